"""Durable delivery as one component: the engine makes it and hands it to the buses it builds.

Agents that run in Celery workers hold no live subscription anywhere: the store script puts each new
message of their topics into their inboxes (scripts.FANOUT), atomically with storing it, and wakes the
ones with nothing due — by pushing their drains onto a list itself when the engine names one (its drain
lane; so no crash comes between storing and asking for a drain), else by telling the engine
(`Waker.wake`). A publish may instead collect the woken agents (a drain that takes them on next, in the
same process). The bus's stand-in (`StandIn`) lets the store script do an idle subscriber's whole handling
of a message for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
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


# For a message being published: (topic, subscriber's id, copy's topic, copy) for each subscriber whose whole
# handling of the message would be to publish that copy (a user's proxy passing a reply on to its user). While
# nothing waits for that subscriber, the copy is stored for it instead (here, by the store script: FANOUT; for
# local clients, by the bus): the same outcome, without the subscriber's turn.
StandIn = Callable[[Message], list[tuple[str, str, str, Message]]]


@dataclass(frozen=True)
class StoreExtension:
    """What the backend's store script runs after storing a message in each topic (see scripts.FANOUT), and
    the conditional copies it may store (logical topic, message), numbered from 1 in its arguments."""

    lua: str
    args: list[Any]
    copies: list[tuple[str, Message]] = field(default_factory=list)


class DurableDelivery:
    def __init__(self, waker: Waker) -> None:
        self.waker = waker

    def store_extension(self, backend: RedisStore, namespace: str, message: Message, *, collecting: bool,
                        stand_ins: list[tuple[str, str, str, Message]] = ()) -> StoreExtension:
        enqueue = None if collecting else self.waker.drain_push(backend)
        queue, template, caller_wakes = ("", "", "") if enqueue is None else (
            enqueue.queue, enqueue.template, enqueue.caller_wakes)
        if template and not _PLAIN_ID.match(namespace):  # cannot go into the template: the waker wakes all
            queue, template = "", ""
        template = template.replace(NAMESPACE_MARK, namespace)
        args: list[Any] = [
            namespace_prefix(backend.key_prefix, namespace), message.sender.id or "", inbox_score(message),
            str(message.id), WAKE_TTL_MS, queue, template, caller_wakes, len(stand_ins),
        ]
        for number, (topic, agent_id, _, _) in enumerate(stand_ins, 1):
            args += [topic, agent_id, number]
        return StoreExtension(scripts.FANOUT, args, [(topic, copy) for _, _, topic, copy in stand_ins])

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
