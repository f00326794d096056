"""Topic names are defined once; namespacing is reversible."""

from __future__ import annotations

import pytest

from messaging import topics


@pytest.mark.parametrize(("made", "as_a_seed_client_names_it"), [
    (topics.user_inbox("u1"), "user:u1:inbox"),
    (topics.user_notifications("u1"), "user:u1:notifications"),
    (topics.user_system_notifications("u1"), "user:u1:system_notifications"),
    (topics.agent_inbox("a"), "agent_inbox:a"),
    (topics.DEFAULT_TOPIC, "default_topic"),
    (topics.SYSTEM_TOPIC, "system_topic"),
    (topics.GUILD_STATUS_TOPIC, "guild_status_topic"),
    (topics.DEAD_LETTER_TOPIC, "dead_letter_queue"),
])
async def test_what_the_runtime_publishes_reaches_a_client_of_the_seeds_topic_names(made, as_a_seed_client_names_it):
    """A client written against the original system subscribes by the names it knows: what our code
    publishes to its own constants must arrive there (and stay in that topic's history)."""
    from messaging.bus import MessagingInterface
    from messaging.clients import SimpleClient
    from messaging.config import memory_config
    from messaging.message import Message

    bus = MessagingInterface(f"g{abs(hash(made))}", memory_config())
    received: list[Message] = []
    try:
        await bus.subscribe(as_a_seed_client_names_it, SimpleClient("seed-client", "seed client", received.append))
        sent = await bus.publish(Message.create(sender={"id": "runtime"}, topics=made, payload={"n": 1}))
        assert [m.id for m in received] == [sent.id]
        assert [m.id for m in await bus.get_messages(as_a_seed_client_names_it)] == [sent.id]
    finally:
        await bus.shutdown()


def test_namespacing_round_trip():
    full = topics.namespaced("guild-1", topics.user_inbox("u"))
    assert full == "guild-1:user:u:inbox"
    assert topics.strip_namespace("guild-1", full) == "user:u:inbox"
    assert topics.split_namespaced(full) == ("guild-1", "user:u:inbox")
    with pytest.raises(ValueError):
        topics.strip_namespace("guild-2", full)


def test_self_inbox_detection():
    assert topics.is_self_inbox(topics.agent_self_inbox("x"))
    assert not topics.is_self_inbox(topics.agent_inbox("x"))


def test_namespace_may_not_contain_a_colon():
    from messaging.bus import MessagingInterface
    from messaging.config import memory_config

    with pytest.raises(ValueError):
        MessagingInterface("a:b", memory_config())
    with pytest.raises(ValueError):
        MessagingInterface("", memory_config())
