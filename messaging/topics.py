"""Topic names, defined once, and guild namespacing.

Agents and clients use logical topic names (`default_topic`, `user:42:inbox`); the bus
stores every topic as `{namespace}:{topic}` where the namespace is the guild id, so no
guild ever sees another guild's messages. Namespaces must not contain `:`.
"""

from __future__ import annotations

DEFAULT_TOPIC = "default_topic"
SYSTEM_TOPIC = "system_topic"
GUILD_STATUS_TOPIC = "guild_status_topic"
# Status changes and stop announcements only (small, rare): what user sockets watch.
GUILD_EVENTS_TOPIC = "guild_events"
HEARTBEAT_TOPIC = "heartbeat"
ERROR_TOPIC = "error_topic"
STATE_TOPIC = "state_topic"
USER_MESSAGE_BROADCAST = "user_message_broadcast"
DEAD_LETTER_TOPIC = "dead_letter_queue"

AGENT_INBOX_PREFIX = "agent_inbox:"
AGENT_SELF_INBOX_PREFIX = "agent_self_inbox:"
GUILD_MANAGER_ID = "guild_manager"


def user_inbox(user_id: str) -> str:
    """Where a user's socket frames go (seed 000)."""
    return f"user:{user_id}:inbox"


def user_notifications(user_id: str) -> str:
    """What a user's socket shows (seed 000)."""
    return f"user:{user_id}:notifications"


def user_system(user_id: str) -> str:
    """System-socket frames from a user (participants, stop requests)."""
    return f"user:{user_id}:system"


def user_system_notifications(user_id: str) -> str:
    """What a user's system socket shows."""
    return f"user:{user_id}:system_notifications"


def agent_inbox(agent_id: str) -> str:
    return f"{AGENT_INBOX_PREFIX}{agent_id}"


def agent_self_inbox(agent_id: str) -> str:
    """An agent's messages to itself: only that agent receives them."""
    return f"{AGENT_SELF_INBOX_PREFIX}{agent_id}"


def is_self_inbox(topic: str) -> bool:
    return topic.startswith(AGENT_SELF_INBOX_PREFIX)


# The guild's bookkeeping: a heartbeat per agent per round and a health report (which grows with
# the guild) per change. Only their latest matter, so they keep a short history.
_BOOKKEEPING_TOPICS = frozenset({GUILD_STATUS_TOPIC, HEARTBEAT_TOPIC, agent_inbox(GUILD_MANAGER_ID)})


def history_limit(topic: str, default: int) -> int:
    """How many messages the logical `topic` keeps (`default`: the backend's limit)."""
    if topic in _BOOKKEEPING_TOPICS:
        from django.conf import settings

        return min(default, settings.GUILDSITE_STATUS_HISTORY_LIMIT)
    return default


def namespaced(namespace: str, topic: str) -> str:
    return f"{namespace}:{topic}"


def strip_namespace(namespace: str, full: str) -> str:
    """The logical topic of a namespaced one; ValueError if it is not in `namespace`."""
    prefix = f"{namespace}:"
    if not full.startswith(prefix):
        raise ValueError(f"topic {full!r} is not in namespace {namespace!r}")
    return full[len(prefix) :]


def split_namespaced(full: str) -> tuple[str, str]:
    """`(namespace, topic)` of a namespaced topic (namespaces never contain `:`)."""
    namespace, sep, topic = full.partition(":")
    if not sep or not namespace or not topic:
        raise ValueError(f"topic {full!r} is not namespaced")
    return namespace, topic
