"""A real server restart: guilds that were running come back by themselves, with their agents' state."""

from __future__ import annotations

import json
import os
import time

from websockets.sync.client import connect

from tests.e2e.test_seed_flow import receive_until
from tests.support.live_server import LiveServer, service_env

REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"


def chat(server: LiveServer, guild_id: str, text: str) -> str:
    """Send `text`; return the reply to it (history replayed on connect is skipped)."""
    with connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/u1/Una") as user:
        user.send(json.dumps({"id": f"say-{text}", "format": "text", "payload": {"text": text}}))
        mine = receive_until(user, lambda f: f.get("client_message_id") == f"say-{text}", timeout=15)
        reply = receive_until(user, lambda f: f.get("in_response_to") == mine["id"], timeout=15)
        return reply["payload"]["text"]


def wait_running(server: LiveServer, guild_id: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.request("GET", f"/api/guilds/{guild_id}")[1]["status"] == "RUNNING":
            return
        time.sleep(0.1)
    raise AssertionError(f"guild not RUNNING after restart:\n{server.log()}")


def test_a_restarted_server_relaunches_its_guilds_with_their_state():
    env = {"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "GUILDSITE_RELAUNCH_ON_START": "1",
           "GUILDSITE_CELERY_QUEUE": f"guildsite-restart-{os.getpid()}", **service_env()}
    first = LiveServer(env=env)
    first.migrate()
    first.start()
    try:
        status, blueprint = first.request("POST", "/catalog/blueprints/", {
            "name": "Counter", "author_id": "a", "spec": {"name": "Counter", "agents": [
                {"name": "Counter", "class_name": "guilds.agents.probe.ProbeAgent"}]}})
        assert status == 201, blueprint
        status, guild = first.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                      {"guild_name": "Counting", "user_id": "u1", "org_id": "testorg456"})
        wait_running(first, guild["id"])
        assert chat(first, guild["id"], "one") == "count: 1"
        assert chat(first, guild["id"], "two") == "count: 2"
    finally:
        first.stop(kill=True, workers=False)  # no clean shutdown: the server process is simply gone
    second = LiveServer(env=env, var_dir=first.var_dir)
    second.workers = first.workers  # the workers (production mode) keep running meanwhile
    second.start()
    try:
        wait_running(second, guild["id"])
        assert chat(second, guild["id"], "three") == "count: 3"
    finally:
        second.stop()
