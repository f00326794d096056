"""Where durable delivery keeps things in Redis, under `{backend key prefix}d:{namespace}:`.

Per topic: `subs:{topic}` (set of the agent ids subscribed to it). Per agent: `inbox:{agent}` (sorted
set of message ids, by priority then time), `box:{agent}` (hash id -> message JSON), `wake:{agent}` (a
drain is due or running), `lease:{agent}` (who drains now), `version:{agent}` (changes whenever the
agent's stored state or subscription does), `attempts:{agent}` (hash id -> handlings begun),
`failures:{agent}` (hash id -> why the last one failed).
"""

from __future__ import annotations

from dataclasses import dataclass

from messaging.ids import id_timestamp_ms
from messaging.message import Message

# Priority first, then time: 8 priorities x 1e13 ms stays exact in a double (< 2^53).
_PRIORITY_WEIGHT = 10**13


def namespace_prefix(key_prefix: str, namespace: str) -> str:
    return f"{key_prefix}d:{namespace}:"


def subscribers_key(prefix: str, topic: str) -> str:
    return f"{prefix}subs:{topic}"


def inbox_score(message: Message) -> int:
    return (message.priority or 0) * _PRIORITY_WEIGHT + id_timestamp_ms(message.id)


@dataclass(frozen=True)
class AgentKeys:
    prefix: str
    agent_id: str

    @property
    def inbox(self) -> str:
        return f"{self.prefix}inbox:{self.agent_id}"

    @property
    def box(self) -> str:
        return f"{self.prefix}box:{self.agent_id}"

    @property
    def wake(self) -> str:
        return f"{self.prefix}wake:{self.agent_id}"

    @property
    def lease(self) -> str:
        return f"{self.prefix}lease:{self.agent_id}"

    @property
    def version(self) -> str:
        return f"{self.prefix}version:{self.agent_id}"

    @property
    def attempts(self) -> str:
        return f"{self.prefix}attempts:{self.agent_id}"

    @property
    def failures(self) -> str:
        return f"{self.prefix}failures:{self.agent_id}"

    def all(self) -> list[str]:
        return [self.inbox, self.box, self.wake, self.version, self.attempts, self.failures]
