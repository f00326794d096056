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


@pytest.mark.parametrize("rig", ["celery"], indirect=True)
def test_a_reply_to_a_user_is_passed_on_by_the_store_while_their_proxy_is_idle_and_never_overtakes_what_waits(rig):
    from guilds.models import GuildAgent, GuildStatus
    from guilds.runtime import loop as runtime_loop
    from messaging import topics as t
    from messaging.message import AgentTag

    from .conftest import echo_spec, wait_for

    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    rig.join(guild, "u1", "User One")
    wait_for(lambda: GuildAgent.objects.filter(guild=guild, agent_id="upa-u1", status="running").exists(),
             what="the user's proxy")
    user = rig.observe(guild, t.user_notifications("u1"))
    inbox = runtime_loop.run(runtime_loop.run(rig.engine.guild(guild.id)).inbox("upa-u1"))
    # The proxy cannot drain while the test holds its lease (as a drain elsewhere would).
    wait_for(lambda: runtime_loop.run(inbox.begin("the-test", 10_000, 0))[0], what="the proxy's lease")
    agent = AgentTag(id="some-agent", name="Some Agent")

    def shown() -> list[str]:
        return [m.payload["text"] for m in runtime_loop.run(user.bus.get_messages(t.user_notifications("u1")))]

    user.publish(t.agent_inbox("upa-u1"), {"text": "first"}, sender=agent)
    assert shown() == ["first"]  # stored for the user with the reply itself: no drain could have done it
    user.publish(t.USER_MESSAGE_BROADCAST, {"text": "to every user"}, sender=agent)  # waits for the proxy
    user.publish(t.agent_inbox("upa-u1"), {"text": "second"}, sender=agent)
    assert shown() == ["first"]
    assert runtime_loop.run(inbox.size()) == 2  # the second waits behind the broadcast
    runtime_loop.run(inbox.release_lease("the-test"))
    wait_for(lambda: shown() == ["first", "to every user", "second"], timeout=20,
             what="the proxy passing both on, in order")
