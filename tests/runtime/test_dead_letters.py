"""Poison messages (failures outside a handler) end in the guild's dead letters after bounded retries,
the agent goes on with its next message, and a dead letter can be given back (Celery engine: its
drains retry; the in-process engine files a letter at once)."""

from __future__ import annotations

import pytest

from guilds.models import DeadLetter, GuildAgent, GuildStatus
from guilds.runtime import loop as runtime_loop
from messaging import topics as t
from tests import factories
from tests.runtime.conftest import MAX_ATTEMPTS, PROBE, echo_spec, wait_for

pytestmark = [pytest.mark.services, pytest.mark.parametrize("rig", ["celery"], indirect=True)]


def with_probe() -> dict:
    spec = echo_spec()
    spec["agents"].append({"name": "Probe", "class_name": PROBE, "additional_topics": ["probe_topic"],
                           "listen_to_default_topic": False})
    return spec


def inbox_of(rig, guild, agent_name: str):
    agent_id = GuildAgent.objects.get(guild=guild, name=agent_name).agent_id
    return runtime_loop.run(_inbox(rig, guild.id, agent_id))


async def _inbox(rig, guild_id: str, agent_id: str):
    return await (await rig.engine.guild(guild_id)).inbox(agent_id)


async def _poison(inbox) -> None:
    """An entry that is not a message, first in line (as a corrupted write would leave one)."""
    await inbox.redis.zadd(inbox.keys.inbox, {"1": 0})
    await inbox.redis.hset(inbox.keys.box, "1", "not a message")


def test_a_message_that_cannot_be_decoded_is_dead_lettered_and_the_agent_goes_on(rig):
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = rig.observe(guild, t.agent_inbox("tester"), t.DEAD_LETTER_TOPIC)
    inbox = inbox_of(rig, guild, "Probe")
    runtime_loop.run(_poison(inbox))

    watcher.publish("probe_topic", {"patch": {"after": "poison"}}, format="probe.state")  # wakes the agent

    state = watcher.wait(lambda m: m.format == "probe.state", timeout=30, what="the next message handled")
    assert state.payload["state"] == {"after": "poison"}
    letter = DeadLetter.objects.get(guild=guild)
    assert (letter.message_id, letter.attempts, letter.message) == (1, MAX_ATTEMPTS, {"undecodable": "not a message"})
    assert "cannot be decoded" in letter.reason
    notice = watcher.wait(lambda m: m.topic_published_to == t.DEAD_LETTER_TOPIC, what="the dead-letter notice")
    assert {"message", "agent_id", "reason", "attempts", "failed_at"} <= set(notice.payload)
    assert notice.payload["agent_id"] == inbox.agent_id
    # Nothing stays stuck behind it (health checks keep arriving every 0.2 s, so the inbox is empty between them).
    wait_for(lambda: runtime_loop.run(inbox.size()) == 0, what="the probe's inbox drained")


def test_a_message_for_an_agent_that_cannot_be_loaded_is_dead_lettered_then_redelivered(rig, api):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    user = rig.observe(guild, t.agent_inbox("tester"))
    echo = GuildAgent.objects.get(guild=guild, name="EchoAgent")
    inbox = inbox_of(rig, guild, "EchoAgent")
    working_spec = echo.spec
    GuildAgent.objects.filter(pk=echo.pk).update(spec={**working_spec, "class_name": "guilds.agents.gone.Gone"})
    runtime_loop.run(inbox.bump_version())  # every worker's copy of the agent is out of date: they reload it

    lost = user.publish("echo_topic", {"text": "lost?"})

    letter = wait_for(lambda: DeadLetter.objects.filter(guild=guild, message_id=lost.id).first(), timeout=30,
                      what="the dead letter")
    assert "could not be loaded" in letter.reason
    assert letter.attempts == MAX_ATTEMPTS
    GuildAgent.objects.filter(pk=echo.pk).update(spec=working_spec)  # the operator fixes the agent
    runtime_loop.run(inbox.bump_version())
    listed = api.get(f"/api/guilds/{guild.id}/dead-letters", **factories.bearer("testuser123")).json()
    assert [(item["message_id"], item["agent_id"]) for item in listed] == [(str(lost.id), echo.agent_id)]

    response = api.post(f"/api/guilds/{guild.id}/dead-letters/{lost.id}/redeliver", **factories.bearer("testuser123"))

    assert response.status_code == 202, response.content
    user.wait(lambda m: m.payload.get("text") == "Echo: lost?", timeout=30, what="the echo once redelivered")
    assert not DeadLetter.objects.filter(guild=guild).exists()
