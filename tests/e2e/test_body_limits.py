"""Request bodies over their limit, against a real server: refused with 413 in the documented error body before they
are read (a declared length) or once the limit is passed (no length), and a trigger's over-long event makes no run."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.e2e.test_socket_edge import ECHO
from tests.support.live_server import LiveServer, service_env
from tests.support.signing import zerg_headers

TRIGGER_MAX_BYTES = 4096


@pytest.fixture(scope="module")
def server():
    live = LiveServer(env={"GUILDSITE_TRIGGER_MAX_BYTES": str(TRIGGER_MAX_BYTES),
                           "GUILDSITE_HTTP_BODY_MAX_BYTES": str(128 * 1024), **service_env()})
    live.migrate()
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def trigger(server):
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "Hooked", "author_id": "hooks", "organization_id": "hookorg",
        "spec": {"name": "Hooked", "agents": [{"name": "EchoAgent", "class_name": ECHO,
                                               "additional_topics": ["echo_topic"],
                                               "listen_to_default_topic": False}]}})
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "hooked", "user_id": "hooks", "org_id": "hookorg"})
    assert status == 201, guild
    deadline = time.monotonic() + 20
    while server.request("GET", f"/api/guilds/{guild['id']}")[1]["status"] != "RUNNING":
        assert time.monotonic() < deadline, "the guild never reached RUNNING"
        time.sleep(0.05)
    status, made = server.request("POST", f"/api/guilds/{guild['id']}/triggers", {"agent": "EchoAgent"},
                                  headers={"X-User-Id": "hooks"})
    assert status == 201, made
    return {**made, "guild_id": guild["id"]}


def answer(response: http.client.HTTPResponse) -> tuple[int, dict]:
    return response.status, json.loads(response.read())


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(server, trigger):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", f"/api/triggers/{trigger['id']}/events")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(50 * 1024 * 1024))
    connection.endheaders()  # not one byte of the 50 MB follows
    status, body = answer(connection.getresponse())
    assert (status, body["code"]) == (413, "too_large")
    assert str(TRIGGER_MAX_BYTES) in body["detail"]


def test_a_body_without_a_length_is_refused_once_past_the_limit_and_reaches_no_view(server, trigger):
    event = json.dumps({"pad": "x" * (TRIGGER_MAX_BYTES * 2)}).encode()
    headers = {key.removeprefix("HTTP_").replace("_", "-"): value
               for key, value in zerg_headers(trigger["secret"], event).items()}
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", f"/api/triggers/{trigger['id']}/events")
    for name, value in {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **headers}.items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(b"%x\r\n%s\r\n" % (len(event), event))  # past the limit; the last chunk is never sent
    status, body = answer(connection.getresponse())
    assert (status, body["code"]) == (413, "too_large")
    status, runs = server.request("GET", f"/api/runs?guild_id={trigger['guild_id']}", headers={"X-User-Id": "hooks"})
    assert (status, runs["results"]) == (200, [])


def test_any_other_path_has_the_sites_limit(server):
    status, body = server.request("POST", "/catalog/blueprints/", raw=b"{" + b" " * (200 * 1024) + b"}")
    assert (status, body["code"]) == (413, "too_large")


def test_an_event_within_the_limit_is_accepted(server, trigger):
    event = json.dumps({"order": 1}).encode()
    headers = {key.removeprefix("HTTP_").replace("_", "-"): value
               for key, value in zerg_headers(trigger["secret"], event).items()}
    status, body = server.request("POST", f"/api/triggers/{trigger['id']}/events", raw=event, headers=headers)
    assert (status, body["status"]) == (202, "accepted"), body
