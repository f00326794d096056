"""Durable subscribers: agents whose messages wait in a per-agent inbox in Redis until handled.

The Celery engine's agents do not hold a live subscription in any process. Instead, the
Redis backend's store script puts every new message of a topic they subscribe to into
their inbox, atomically with storing it, and says which agents had nothing pending: the
bus passes those to the wake handler (the engine enqueues a drain task). A drain takes
the agent's lease, handles the inbox in order (priority, then time, then id), and removes
each message only after its handler finished, so a crash leaves it there for the next one.

Keys, under `{prefix}d:{namespace}:`: `subs:{topic}` (set of agent ids), `inbox:{agent}`
(sorted set of message ids), `box:{agent}` (hash id → message JSON), `wake:{agent}` (a drain
is due or running), `lease:{agent}` (who drains now).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from messaging.ids import id_timestamp_ms
from messaging.message import Message

if TYPE_CHECKING:
    from messaging.backends.redis import RedisMessagingBackend

logger = logging.getLogger(__name__)

WakeHandler = Callable[[str, list[str]], None]
_wake_handler: WakeHandler | None = None

# Priority first, then time: 8 priorities x 1e13 ms stays exact in a double (< 2^53).
_PRIORITY_WEIGHT = 10**13
# A wake flag outlives a lost drain task (a worker or Redis gone) by this much at most; beat's
# sweep (guilds.engines.celery) then wakes the agent again.
WAKE_TTL_MS = 10_000

_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def inbox_score(message: Message) -> int:
    return (message.priority or 0) * _PRIORITY_WEIGHT + id_timestamp_ms(message.id)


def set_wake_handler(handler: WakeHandler | None) -> None:
    """Who is told that agents have new messages and no drain due (the engine, per process)."""
    global _wake_handler
    _wake_handler = handler


def wake(namespace: str, agents: list[str]) -> None:
    if agents and _wake_handler is not None:
        _wake_handler(namespace, agents)
    elif agents:
        logger.warning("durable agents %s of %s have messages but no wake handler is set", agents, namespace)


class Inbox:
    """One durable subscriber's side of the Redis backend."""

    def __init__(self, backend: RedisMessagingBackend, namespace: str, agent_id: str) -> None:
        self.redis = backend._client
        self.prefix = backend.durable_prefix(namespace)
        self.namespace = namespace
        self.agent_id = agent_id
        self.inbox_key = f"{self.prefix}inbox:{agent_id}"
        self.box_key = f"{self.prefix}box:{agent_id}"
        self.wake_key = f"{self.prefix}wake:{agent_id}"
        self.lease_key = f"{self.prefix}lease:{agent_id}"

    async def subscribe(self, topics: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for topic in topics:
                pipe.sadd(f"{self.prefix}subs:{topic}", self.agent_id)
            await pipe.execute()

    async def unsubscribe(self, topics: list[str], *, drop_waiting: bool = True) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for topic in topics:
                pipe.srem(f"{self.prefix}subs:{topic}", self.agent_id)
            if drop_waiting:
                pipe.delete(self.inbox_key, self.box_key, self.wake_key)
            await pipe.execute()

    async def add(self, messages: list[Message]) -> bool:
        """Queue messages directly (catch-up of what was stored before subscribing); True to wake."""
        if not messages:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            for message in messages:
                pipe.zadd(self.inbox_key, {str(message.id): inbox_score(message)}, nx=True)
                pipe.hsetnx(self.box_key, str(message.id), message.to_json())
            pipe.set(self.wake_key, "1", nx=True, px=WAKE_TTL_MS)
            results = await pipe.execute()
        return bool(results[-1])

    async def peek(self, count: int) -> list[Message]:
        ids = await self.redis.zrange(self.inbox_key, 0, count - 1)
        if not ids:
            return []
        raw = await self.redis.hmget(self.box_key, ids)
        messages = []
        for message_id, data in zip(ids, raw, strict=True):
            if data is None:  # its body is gone: nothing to handle, drop the id
                await self.redis.zrem(self.inbox_key, message_id)
                continue
            messages.append(Message.from_json(data))
        return messages

    async def done(self, message: Message) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.inbox_key, str(message.id))
            pipe.hdel(self.box_key, str(message.id))
            await pipe.execute()

    async def size(self) -> int:
        return await self.redis.zcard(self.inbox_key)

    async def take_lease(self, token: str, ttl_ms: int) -> bool:
        return bool(await self.redis.set(self.lease_key, token, nx=True, px=ttl_ms))

    async def renew_lease(self, token: str, ttl_ms: int) -> bool:
        return bool(await self.redis.eval(_RENEW_LEASE, 1, self.lease_key, token, ttl_ms))

    async def release_lease(self, token: str) -> None:
        await self.redis.eval(_RELEASE_LEASE, 1, self.lease_key, token)

    async def lease_left_ms(self) -> int:
        return max(0, await self.redis.pttl(self.lease_key))

    async def wake_if_waiting(self) -> bool:
        """True if messages wait and no drain is due: the caller must enqueue one (the flag is now set)."""
        if not await self.size():
            return False
        return bool(await self.redis.set(self.wake_key, "1", nx=True, px=WAKE_TTL_MS))

    async def settle_wake(self) -> bool:
        """The drain is ending: clear the wake flag, then look again (a message may have come
        between the last look and now). True if the caller must go on draining."""
        await self.redis.delete(self.wake_key)
        if await self.size() == 0:
            return False
        return bool(await self.redis.set(self.wake_key, "1", nx=True, px=WAKE_TTL_MS))
