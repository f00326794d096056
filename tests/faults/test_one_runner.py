"""Two web servers on one database and Redis (the in-process engine): a guild runs in one of them, never
both; when that one dies, the other can take it over."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import redis
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import receive_until
from tests.support.live_server import LiveServer, service_env

pytestmark = pytest.mark.services


REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"


def echo_once(server: LiveServer, guild_id: str, text: str) -> dict:
    """Seed 000's way: the system socket, the user socket, and once the guild says "ok", a message."""
    base = f"{server.ws_base}/ws/guilds/{guild_id}"
    with connect(f"{base}/syscomms/u1") as system, connect(f"{base}/usercomms/u1/Una") as user:
        receive_until(system, lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok", timeout=20)
        user.send(json.dumps({"id": text, "format": "text", "payload": {"text": text}}))
        mine = receive_until(user, lambda f: f.get("client_message_id") == text, timeout=15)
        return receive_until(user, lambda f: f.get("in_response_to") == mine["id"], timeout=15)


def test_two_web_servers_never_both_run_a_guild():
    shared = {"GUILDSITE_EXECUTION_ENGINE": "inprocess", "GUILDSITE_RELAUNCH_ON_START": "1",
              # One namespace for both servers' leases (each live server has its own by default).
              "GUILDSITE_CACHE_PREFIX": f"one-runner-{uuid.uuid4().hex[:8]}", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5",
              "GUILDSITE_CELERY_QUEUE": f"one-runner-{os.getpid()}", **service_env()}
    first = LiveServer(env=shared)
    first.migrate()
    first.start()
    second = LiveServer(env=shared)
    try:
        status, blueprint = first.request("POST", "/catalog/blueprints/", {
            "name": "Echo", "author_id": "a", "organization_id": "testorg456", "spec": {"name": "Echo", "agents": [
                {"name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"}]}})
        assert status == 201, blueprint
        status, guild = first.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                      {"guild_name": "Shared", "user_id": "u1", "org_id": "testorg456"})
        assert status == 201, guild
        assert echo_once(first, guild["id"], "one")["payload"]["text"] == "Echo: one"
        lease = redis.Redis.from_url(shared["REDIS_URL"])
        key = f"{shared['GUILDSITE_CACHE_PREFIX']}:runner:{guild['id']}"
        runner = lease.get(key)
        assert runner is not None  # the first server holds the guild

        second.start()  # it relaunches the live guilds it finds, but this one has a runner
        assert second.request("POST", f"/api/guilds/{guild['id']}/relaunch")[1] == {"is_relaunching": False}
        assert lease.get(key) == runner
        assert "relaunched" not in second.log()
        # Talking through the second server reaches the first one's agents.
        assert echo_once(second, guild["id"], "two")["payload"]["text"] == "Echo: two"

        first.stop(kill=True)  # gone without a word: its lease lapses
        deadline = time.monotonic() + 30
        while not second.request("POST", f"/api/guilds/{guild['id']}/relaunch")[1]["is_relaunching"]:
            assert time.monotonic() < deadline, "the dead server's lease never lapsed"
            time.sleep(0.2)  # polling the relaunch until the lease (10 s) has lapsed
        assert lease.get(key) not in (None, runner)  # the second server runs it now
        assert echo_once(second, guild["id"], "three")["payload"]["text"] == "Echo: three"
    finally:
        first.stop()
        second.stop()
