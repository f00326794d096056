"""The embedded default's schedules ticker: a real server, started as `make run` starts it, fires a due schedule
by itself (GUILDSITE_SCHEDULE_TICKER=inprocess; production's Celery beat task runs the same tick)."""

from __future__ import annotations

import time

from tests.support.live_server import LiveServer, service_env

ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"


def test_the_in_process_ticker_fires_a_due_schedule_once():
    server = LiveServer(env={"GUILDSITE_SCHEDULE_TICKER": "inprocess", "GUILDSITE_SCHEDULE_TICK_SECONDS": "0.2",
                             **service_env()})
    server.migrate()
    server.start()
    try:
        headers = {"X-User-Id": "testuser123"}
        status, blueprint = server.request("POST", "/catalog/blueprints/", {
            "name": "Ticked", "author_id": "testuser123", "organization_id": "testorg456",
            "spec": {"name": "Ticked", "agents": [{"name": "EchoAgent", "class_name": ECHO,
                                                    "additional_topics": ["echo_topic"],
                                                    "listen_to_default_topic": False}]}}, headers=headers)
        assert status == 201, blueprint
        status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                       {"guild_name": "Ticked", "user_id": "testuser123", "org_id": "testorg456"})
        assert status == 201, guild
        deadline = time.monotonic() + 20
        while server.request("GET", f"/api/guilds/{guild['id']}", headers=headers)[1]["status"] != "RUNNING":
            assert time.monotonic() < deadline, "the guild never ran"
            time.sleep(0.05)
        status, made = server.request("POST", f"/api/guilds/{guild['id']}/schedules",
                                      {"cron": "0 0 1 1 *", "agent": "EchoAgent", "payload": {"text": "tick"}},
                                      headers=headers)
        assert status == 201, made
        # Due now (a cron firing at most once a year would not come during a test): the ticker takes it.
        server.manage("shell", "-c", "from django.utils import timezone; from guilds.models import Schedule; "
                      f"Schedule.objects.filter(pk='{made['id']}').update(next_run_at=timezone.now())")
        deadline = time.monotonic() + 20
        while True:
            status, listed = server.request("GET", "/api/runs?trigger=schedule", headers=headers)
            runs = listed["results"] if status == 200 else []
            if [r["status"] for r in runs] == ["succeeded"]:
                break
            assert time.monotonic() < deadline, f"no scheduled run succeeded: {listed}\n{server.log()}"
            time.sleep(0.05)
        status, after = server.request("GET", f"/api/schedules/{made['id']}", headers=headers)
        assert after["last_run_id"] == runs[0]["id"]
        assert after["next_run_at"] > after["last_run_at"]  # moved on to next year's firing
    finally:
        server.stop()
