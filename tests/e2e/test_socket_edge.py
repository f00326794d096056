"""The socket edge against a real server (daphne as `make run` and the Procfile start it): protocol errors
close with their own codes and a close frame, oversized frames are refused by size, and URLs that fit no
socket are refused with a code rather than a server error."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import REPORT, receive_until

ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"
SOFT_MAX = 256 * 1024  # GUILDSITE_WS_FRAME_MAX_BYTES's default
HARD_MAX = 1024 * 1024  # GUILDSITE_WS_FRAME_HARD_MAX_BYTES's default


@pytest.fixture(scope="module")
def guild_id(guildsite_server):
    server = guildsite_server
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "EdgeEcho", "author_id": "edge", "organization_id": "edgeorg",
        "spec": {"name": "EdgeEcho", "agents": [{"name": "EchoAgent", "class_name": ECHO,
                                                 "additional_topics": ["echo_topic"],
                                                 "listen_to_default_topic": False}]}})
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "edge", "user_id": "edgeuser", "org_id": "edgeorg"})
    assert status == 201, guild
    return guild["id"]


def closed_with(ws, timeout: float = 10.0) -> tuple[int, list[dict]]:
    """Read until the server closes the socket: its close code and the frames before it."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frames.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
        except ConnectionClosed as closed:
            received = closed.rcvd  # None: the connection dropped without a close frame (a client sees 1006)
            return (received.code if received is not None else 1006), frames
    raise AssertionError(f"the socket was not closed in {timeout} s; frames: {frames}")


def user_socket(server, guild_id: str, user_id: str = "edgeuser"):
    return connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/{user_id}/{quote('Edge User')}",
                   max_size=None)


def test_invalid_utf8_in_a_text_frame_closes_1007(guildsite_server, guild_id):
    with user_socket(guildsite_server, guild_id) as ws:
        ws.send(b'{"format": "text", "payload": {"text": "\xff\xfe"}}', text=True)
        code, _ = closed_with(ws)
    assert code == 1007


def test_a_frame_over_the_hard_limit_closes_1009(guildsite_server, guild_id):
    with user_socket(guildsite_server, guild_id) as ws:
        try:
            ws.send(json.dumps({"format": "text", "payload": {"text": "x" * (HARD_MAX + 1024)}}))
        except ConnectionClosed:
            pass  # closed while the frame was still being written: the code is what matters
        code, _ = closed_with(ws)
    assert code == 1009


def test_a_frame_between_the_limits_is_refused_and_the_socket_stays_open(guildsite_server, guild_id):
    with user_socket(guildsite_server, guild_id) as ws:
        ws.send(json.dumps({"id": "big", "format": "text", "payload": {"text": "x" * (SOFT_MAX + 1024)}}))
        refused = receive_until(ws, lambda f: f["payload"].get("error_type") == "PAYLOAD_TOO_LARGE")
        assert refused["format"].endswith("ErrorMessage")
        ws.send("{not json")
        still_open = receive_until(ws, lambda f: f["payload"].get("error_type") == "INVALID_JSON")
        assert still_open["format"].endswith("ErrorMessage")


@pytest.mark.parametrize("path", [
    "syscomms/edge%2Fuser",
    "usercomms/edge%2Fuser/Edge",
    "usercomms/edgeuser/Edge%2FUser",
    f"syscomms/{'u' * 1000}",
    f"usercomms/{'u' * 1000}/Edge",
])
def test_a_bad_user_id_or_name_in_the_url_is_refused_4400(guildsite_server, guild_id, path):
    with connect(f"{guildsite_server.ws_base}/ws/guilds/{guild_id}/{path}") as ws:
        code, frames = closed_with(ws)
    assert code == 4400
    assert [f["payload"]["error_type"] for f in frames] == ["INVALID_USER"]
    assert "1-128 characters" in frames[0]["payload"]["error_message"]


def test_a_path_that_is_no_socket_is_refused_4404(guildsite_server):
    with connect(f"{guildsite_server.ws_base}/ws/nothing/here") as ws:
        code, frames = closed_with(ws)
    assert code == 4404
    assert [f["payload"]["error_type"] for f in frames] == ["NOT_FOUND"]


def test_every_agent_in_every_report_has_the_seed_fields(guildsite_server, guild_id):
    seed_fields = {"checktime", "checkstatus", "responsetime", "checkmeta"}
    with connect(f"{guildsite_server.ws_base}/ws/guilds/{guild_id}/syscomms/edgeuser") as system, \
            user_socket(guildsite_server, guild_id):
        reports: list[dict] = []
        receive_until(system, lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                      timeout=15, seen=reports)
    reports = [r for r in reports if r["format"] == REPORT]
    entries = [entry for report in reports for entry in report["payload"]["agents"].values()]
    assert entries, "no report listed an agent"
    for entry in entries:
        assert seed_fields <= set(entry), entry
        assert entry["checktime"]
        assert entry["responsetime"]
        assert set(entry["checkmeta"]) == {"qos_latency", "observed_latency"}
