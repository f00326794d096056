"""A drain that loses its agent's lease (another took the agent over) stops before handling anything
more; whoever holds the lease then handles what is left, and nothing takes effect twice."""

from __future__ import annotations

import pytest

from guilds.models import Guild, GuildAgent, GuildStatus
from guilds.runtime import loop as runtime_loop
from messaging import topics as t
from tests.runtime.conftest import PROBE, celery_workers, echo_spec, rig, wait_for  # noqa: F401 - fixtures

pytestmark = [pytest.mark.services, pytest.mark.parametrize("rig", ["celery"], indirect=True)]


async def _inbox(guild_rig, guild_id: str, agent_id: str):
    return await (await guild_rig.engine.guild(guild_id)).inbox(agent_id)


def _probe_of(guild_rig):
    """A running guild with the probe agent: (guild, an observer of the tester's inbox, probe id, its inbox)."""
    spec = echo_spec()
    spec["agents"].append({"name": "Probe", "class_name": PROBE, "additional_topics": ["probe_topic"],
                           "listen_to_default_topic": False})
    guild = guild_rig.create(spec)
    guild_rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = guild_rig.observe(guild, t.agent_inbox("tester"))
    probe = GuildAgent.objects.get(guild=guild, name="Probe").agent_id
    inbox = runtime_loop.run(_inbox(guild_rig, guild.id, probe))
    return guild, watcher, probe, inbox


def test_a_drain_that_loses_its_lease_stops_and_the_new_holder_goes_on(rig, celery_workers):  # noqa: F811
    guild, watcher, probe, inbox = _probe_of(rig)

    hold = watcher.publish("probe_topic", {"seconds": 30, "until": "release"}, format="probe.hold")
    wait_for(lambda: runtime_loop.run(inbox.redis.get(inbox.keys.lease)), what="a drain to hold the agent")
    # Another drain takes the agent over (as after a stall longer than the lease).
    runtime_loop.run(inbox.redis.set(inbox.keys.lease, "another-drain", px=60_000))
    after = watcher.publish("probe_topic", {"patch": {"after": True}}, format="probe.state")
    Guild.objects.filter(pk=guild.pk).update(state={"release": True})  # the held message may now end

    wait_for(lambda: f"drain of agent {probe} lost its lease" in celery_workers.log(), timeout=20,
             what="the drain to notice it lost the lease")
    waiting = runtime_loop.run(inbox.redis.zrange(inbox.keys.inbox, 0, -1))
    assert str(after.id).encode() in waiting  # it stopped: the next message was not handled
    assert not [m for m in watcher.messages if m.format == "probe.state"]

    runtime_loop.run(inbox.redis.delete(inbox.keys.lease))  # the other drain's lease ends
    runtime_loop.run(rig.engine.sweep(guild.id, force=True))  # as beat's sweep does
    watcher.wait(lambda m: m.format == "probe.state", timeout=20, what="the next message, by the new holder")
    released = [m for m in watcher.messages if m.format == "probe.released" and m.in_response_to == hold.id]
    assert len({m.id for m in released}) == 1  # the held message ran again, to the same (one) reply


def test_a_lease_that_lapses_with_nobody_taking_over_is_drained_again_at_once(rig, celery_workers):  # noqa: F811
    guild, watcher, probe, inbox = _probe_of(rig)

    watcher.publish("probe_topic", {"seconds": 30, "until": "release"}, format="probe.hold")
    wait_for(lambda: runtime_loop.run(inbox.redis.get(inbox.keys.lease)), what="a drain to hold the agent")
    # The lease lapses (as in a stall longer than it) and no other drain takes the agent. The wake flag stays set
    # for a minute, so neither a new message nor beat's sweep wakes the agent: only the drain that lost it can.
    runtime_loop.run(inbox.redis.delete(inbox.keys.lease))
    runtime_loop.run(inbox.redis.set(inbox.keys.wake, "1", px=60_000))
    watcher.publish("probe_topic", {"patch": {"after": True}}, format="probe.state")
    Guild.objects.filter(pk=guild.pk).update(state={"release": True})

    wait_for(lambda: f"drain of agent {probe} lost its lease" in celery_workers.log(), timeout=20,
             what="the drain to notice it lost the lease")
    watcher.wait(lambda m: m.format == "probe.state", timeout=20, what="the next message, drained again at once")
