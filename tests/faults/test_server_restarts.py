"""Production mode (daphne + a Celery worker + PostgreSQL + Redis): a restarted daphne loses no
accepted message, and the user gets each reply exactly once."""

from __future__ import annotations

import json
import os
import time
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import receive_until
from tests.support.live_server import LiveServer, service_env

pytestmark = pytest.mark.services


def launch(server: LiveServer, agent_class: str) -> str:
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "Faults", "author_id": "a", "spec": {"name": "Faults", "agents": [
            {"name": "Agent", "class_name": agent_class}]}})
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "Faults", "user_id": "u1", "org_id": "o"})
    deadline = time.monotonic() + 30
    while server.request("GET", f"/api/guilds/{guild['id']}")[1]["status"] != "RUNNING":
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    return guild["id"]


def user_socket(server: LiveServer, guild_id: str, last_seen: str | None = None):
    query = f"?last_seen_id={last_seen}" if last_seen else ""
    return connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/u1/{quote('Una')}{query}", open_timeout=15)


def frames_until_quiet(ws, quiet: float = 1.5) -> list[dict]:
    frames = []
    while True:
        try:
            frames.append(json.loads(ws.recv(timeout=quiet)))
        except TimeoutError:
            return frames


def test_a_daphne_restart_loses_nothing_and_the_user_resumes_exactly_once():
    env = {"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", **service_env(),
           "GUILDSITE_CELERY_QUEUE": f"guildsite-daphne-{os.getpid()}"}
    first = LiveServer(env=env)
    first.migrate()
    first.start()
    second = None
    try:
        guild_id = launch(first, "guilds.agents.probe.ProbeAgent")
        with user_socket(first, guild_id) as ws:
            ws.send(json.dumps({"id": "a", "format": "text", "payload": {"text": "first"}}))
            receive_until(ws, lambda f: f["payload"].get("text") == "count: 1", timeout=15)
            ws.send(json.dumps({"id": "b", "format": "text", "payload": {"text": "slow: 2"}}))
            mine = receive_until(ws, lambda f: f.get("client_message_id") == "b", timeout=15)
            first.stop(kill=True, workers=False)  # daphne dies while the agent is still working on it
        second = LiveServer(env=env, var_dir=first.var_dir)
        second.port, second.workers = first.port, first.workers
        second.start()
        with user_socket(second, guild_id, last_seen=mine["id"]) as ws:
            missed = frames_until_quiet(ws, quiet=4)
            assert [f["payload"]["text"] for f in missed] == ["count: 2"]  # exactly once, nothing else replayed
            ws.send(json.dumps({"format": "text", "payload": {"text": "third"}}))
            receive_until(ws, lambda f: f["payload"].get("text") == "count: 3", timeout=15)
    finally:
        (second or first).stop()
