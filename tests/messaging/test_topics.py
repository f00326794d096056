"""Topic names are defined once; namespacing is reversible."""

from __future__ import annotations

import pytest

from messaging import topics


def test_seed_topic_names():
    assert topics.user_inbox("u1") == "user:u1:inbox"
    assert topics.user_notifications("u1") == "user:u1:notifications"
    assert topics.user_system("u1") == "user:u1:system"
    assert topics.user_system_notifications("u1") == "user:u1:system_notifications"
    assert topics.agent_inbox("a") == "agent_inbox:a"
    assert topics.agent_self_inbox("a") == "agent_self_inbox:a"
    assert (topics.DEFAULT_TOPIC, topics.SYSTEM_TOPIC, topics.GUILD_STATUS_TOPIC) == (
        "default_topic", "system_topic", "guild_status_topic",
    )
    assert topics.HEARTBEAT_TOPIC == "heartbeat"
    assert topics.ERROR_TOPIC == "error_topic"
    assert topics.STATE_TOPIC == "state_topic"
    assert topics.USER_MESSAGE_BROADCAST == "user_message_broadcast"
    assert topics.DEAD_LETTER_TOPIC == "dead_letter_queue"


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
