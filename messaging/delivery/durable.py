"""Durable delivery as one component: the engine makes it and hands it to the buses it builds.

Agents that run in Celery workers hold no live subscription anywhere: the store script puts each new
message of their topics into their inboxes (scripts.FANOUT), atomically with storing it, and wakes the
ones with nothing due — by pushing their drains onto a list itself when the engine names one (its drain
lane; so no crash comes between storing and asking for a drain), else by telling the engine
(`Waker.wake`). A publish may instead collect the woken agents (a drain that takes them on next, in the
same process).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from messaging.delivery import scripts
from messaging.delivery.inbox import WAKE_TTL_MS, Inbox
from messaging.delivery.keys import inbox_score, namespace_prefix
from messaging.message import Message

# Markers in a drain's template: the namespace is written in before the script runs, the agent by the script.
NAMESPACE_MARK, AGENT_MARK = "@NAMESPACE@", "@AGENT@"
_PLAIN_ID = re.compile(r"^[\w.@+-]+$", re.ASCII)  # goes into a JSON template as it is

Woken = list[tuple[str, str]]  # (namespace, agent id)


@dataclass(frozen=True)
class DrainPush:
    """How the store script asks for a drain itself: `template`, with the markers filled in, pushed onto list
    `queue`, except for agents whose id starts with `caller_wakes` (the waker is told of those)."""

    queue: str
    template: str
    caller_wakes: str = ""


class RedisStore(Protocol):
    """What durable delivery needs of the Redis messaging backend it shares a Redis with."""

    key_prefix: str
    client: Any

    def same_database(self, url: str) -> bool: ...


class Waker(Protocol):
    """The engine's side: who drains an agent that has work newly due."""

    def wake(self, namespace: str, agent_ids: list[str]) -> None: ...

    def drain_push(self, backend: RedisStore) -> DrainPush | None: ...


@dataclass(frozen=True)
class StoreExtension:
    """What the backend's store script runs after storing a message in each topic (see scripts.FANOUT)."""

    lua: str
    args: list[Any]


class DurableDelivery:
    def __init__(self, waker: Waker) -> None:
        self.waker = waker

    def store_extension(self, backend: RedisStore, namespace: str, message: Message, *,
                        collecting: bool) -> StoreExtension:
        enqueue = None if collecting else self.waker.drain_push(backend)
        queue, template, caller_wakes = ("", "", "") if enqueue is None else (
            enqueue.queue, enqueue.template, enqueue.caller_wakes)
        if template and not _PLAIN_ID.match(namespace):  # cannot go into the template: the waker wakes all
            queue, template = "", ""
        template = template.replace(NAMESPACE_MARK, namespace)
        return StoreExtension(scripts.FANOUT, [
            namespace_prefix(backend.key_prefix, namespace), message.sender.id or "", inbox_score(message),
            str(message.id), WAKE_TTL_MS, queue, template, caller_wakes,
        ])

    def woken(self, namespace: str, agent_ids: list[str], collect: Woken | None) -> None:
        """Agents with work newly due: to `collect` (a drain takes them next) or to the waker."""
        if not agent_ids:
            return
        if collect is not None:
            collect.extend((namespace, agent_id) for agent_id in agent_ids)
        else:
            self.waker.wake(namespace, agent_ids)

    @staticmethod
    def inbox(backend: RedisStore, namespace: str, agent_id: str) -> Inbox:
        return Inbox(backend.client, namespace_prefix(backend.key_prefix, namespace), agent_id)
