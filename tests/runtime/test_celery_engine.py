"""The Celery engine's own parts that the engine-neutral runtime tests do not single out."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.services


@pytest.mark.parametrize("rig", ["celery"], indirect=True)
def test_messages_for_an_agent_that_no_longer_runs_are_dropped_and_the_worker_goes_on(rig):
    # The gap a stop leaves: the agent's record says stopped while its subscription still stands.
    from guilds.models import GuildAgent, GuildStatus
    from guilds.runtime import loop as runtime_loop
    from messaging import topics as t

    from .conftest import echo_spec, wait_for

    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    echo = GuildAgent.objects.get(guild=guild, class_name__endswith="EchoAgent")
    watcher = rig.observe(guild, t.agent_inbox("tester"))
    watcher.publish("echo_topic", {"text": "before"})
    watcher.wait(lambda m: m.payload.get("text") == "Echo: before", what="the echo while it runs")

    celery_guild = runtime_loop.run(rig.engine.guild(guild.id))
    inbox = runtime_loop.run(celery_guild.inbox(echo.agent_id))
    # A drain begun before the stop goes on with the agent as it was (health checks come every 0.2 s here): the test
    # holds the agent's lease, as a drain does, while it stops it, so the next message meets a drain begun after.
    wait_for(lambda: runtime_loop.run(inbox.begin("the-test", 5000, 0))[0], what="the echo agent's lease")
    GuildAgent.objects.filter(pk=echo.pk).update(status="stopped")
    runtime_loop.run(inbox.bump_version())  # as a stop does: workers reload the agent
    runtime_loop.run(inbox.release_lease("the-test"))
    watcher.publish("echo_topic", {"text": "after"})
    wait_for(lambda: runtime_loop.run(inbox.size()) == 0, what="the waiting message dropped")
    assert not [m for m in watcher.messages if m.payload.get("text") == "Echo: after"]
