"""Guilds nobody uses are suspended (agents unloaded, state and status kept) and resumed when used."""

from __future__ import annotations

import json
import logging

import pytest
from django.utils import timezone

from guilds.models import DeadLetter, GuildAgent, GuildStatus
from guilds.runtime import loop as runtime_loop
from guilds.runtime.activity import activity
from guilds.services import guild_relaunch, guild_stop, guild_wake, guilds_relaunch_live
from messaging import topics as t
from messaging.message import AgentTag, Message
from tests import factories
from tests.runtime.conftest import PROBE, echo_spec, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def with_probe() -> dict:
    spec = echo_spec()
    spec["agents"].append({"name": "Probe", "class_name": PROBE, "additional_topics": ["probe_topic"],
                           "listen_to_default_topic": False})
    return spec


def test_an_idle_guild_is_suspended_its_agents_unloaded_and_resumed_with_its_state_and_status(
        rig, idle_checks, api, caplog):
    caplog.set_level(logging.INFO, logger="guilds.runtime.suspension")
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = rig.observe(guild, t.agent_inbox("tester"))
    watcher.publish("probe_topic", {"patch": {"count": 1}}, format="probe.state")
    watcher.wait(lambda m: m.format == "probe.state")
    assert api.get(f"/api/guilds/{guild.id}").json()["suspended"] is False

    idle_checks.wait_suspended(guild)

    assert not rig.engine.is_guild_running(guild.id)  # its agents are gone from the engine
    if rig.engine.name == "inprocess":
        assert guild.id not in rig.engine.guilds
    else:
        assert runtime_loop.run(_roster(rig, guild.id)) == []
    guild.refresh_from_db()
    assert guild.status == GuildStatus.RUNNING  # the seed's status, as it was
    assert guild.suspended_at is not None
    assert GuildAgent.objects.get(guild=guild, name="Probe").state == {"count": 1}  # state kept
    body = api.get(f"/api/guilds/{guild.id}").json()
    assert body["suspended"] is True
    assert body["status"] == "RUNNING"
    assert [g["suspended"] for g in api.get("/api/guilds").json() if g["id"] == guild.id] == [True]
    if rig.engine.name == "inprocess":  # (on Celery the suspension's log line is the worker's)
        assert any(r.getMessage().startswith("guild suspended") and r.guild_id == guild.id for r in caplog.records)

    status_topic = rig.observe(guild)
    assert guild_wake(guild_id=guild.id) is True  # what a message for it, a schedule or a trigger calls
    assert any(r.getMessage() == "guild resumed" and r.guild_id == guild.id for r in caplog.records)
    guild.refresh_from_db()
    assert not guild.suspended
    assert rig.engine.is_guild_running(guild.id)
    watcher.messages.clear()
    watcher.publish("probe_topic", {"patch": {"again": True}}, format="probe.state")
    assert watcher.wait(lambda m: m.format == "probe.state").payload["state"] == {"count": 1, "again": True}
    status_topic.wait(lambda m: m.format.endswith("AgentsHealthReport") and m.payload["guild_health"] == "ok",
                      what="a report with every agent back")
    assert status_topic.statuses() == []  # resumed without leaving RUNNING
    assert rig.status(guild) == GuildStatus.RUNNING
    assert guild_wake(guild_id=guild.id) is False  # running: nothing to resume


async def _roster(rig, guild_id: str) -> list[str]:
    return await (await rig.engine.guild(guild_id)).running_agent_ids()


def test_a_start_relaunches_only_guilds_that_are_not_suspended(rig, idle_checks):
    used = rig.create(echo_spec())  # the older: were it not held, it would be suspended first
    rig.wait_status(used, GuildStatus.RUNNING)
    activity().hold(used.id)  # what an open socket does
    try:
        idle = rig.create(echo_spec())
        rig.wait_status(idle, GuildStatus.RUNNING)
        idle_checks.wait_suspended(idle)
        assert not idle_checks.suspended(used)
    finally:
        activity().release(used.id)
    for guild in (idle, used):
        runtime_loop.run(rig.engine.forget(guild.id))  # the process that ran them is gone

    relaunched = guilds_relaunch_live()

    assert used.id in relaunched
    assert idle.id not in relaunched
    rig.wait_status(used, GuildStatus.RUNNING)
    assert not rig.engine.is_guild_running(idle.id)
    idle.refresh_from_db()
    assert idle.suspended
    assert idle.status == GuildStatus.RUNNING
    assert guild_relaunch(guild_id=idle.id) is True  # asked to, a relaunch resumes it
    wait_for(lambda: rig.engine.is_guild_running(idle.id), what="the suspended guild relaunched")
    idle.refresh_from_db()
    assert not idle.suspended


def test_a_suspended_guild_stops_for_good(rig, idle_checks):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    idle_checks.wait_suspended(guild)

    guild = guild_stop(guild_id=guild.id, user_id="testuser123")

    assert guild.status == GuildStatus.STOPPED
    assert not guild.suspended  # nothing left to resume
    assert guild_wake(guild_id=guild.id) is False
    assert not rig.engine.is_guild_running(guild.id)


def test_a_dead_letter_redelivered_to_a_suspended_guild_resumes_it_and_is_handled(rig, idle_checks, api):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    tester = rig.observe(guild, t.agent_inbox("tester"))
    idle_checks.wait_suspended(guild)
    echo = GuildAgent.objects.get(guild=guild, name="EchoAgent")
    lost = Message.create(sender=AgentTag(id="tester", name="Tester"), topics="echo_topic",
                          payload={"text": "still there?"}, format="text")
    DeadLetter.objects.create(guild=guild, agent_id=echo.agent_id, message_id=lost.id,
                              message=json.loads(lost.to_json()), reason="a test's", attempts=3,
                              failed_at=timezone.now())

    response = api.post(f"/api/guilds/{guild.id}/dead-letters/{lost.id}/redeliver", **factories.bearer("testuser123"))

    assert response.status_code == 202, response.content
    tester.wait(lambda m: m.payload.get("text") == "Echo: still there?", what="the echo once redelivered")
    guild.refresh_from_db()
    assert not guild.suspended
