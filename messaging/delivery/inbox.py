"""One durable subscriber's inbox: what waits for an agent, its lease, its state version, its attempts.

A drain takes the lease (`begin`), handles the inbox in order (priority, then time, then id) and removes
each message only after it was handled (`step`), so a crash leaves it there for the next drain. Entries
come back raw: the drain decodes them, so a message that cannot be decoded counts as a failed attempt
like any other failure outside a handler.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from messaging.delivery import scripts
from messaging.delivery.keys import AgentKeys, inbox_score, subscribers_key
from messaging.message import Message

# A wake flag outlives a lost drain task (a worker or Redis gone) by this much at most; the engine's
# sweep (Celery beat) then wakes the agent again.
WAKE_TTL_MS = 10_000


class LeaseLost(Exception):
    """A drain's lease lapsed and another drain holds the agent now."""


@dataclass
class Batch:
    """Waiting messages, oldest first: (id, JSON, or None when the body is gone). `attempts` counts the
    handlings begun of the first one, this one included."""

    entries: list[tuple[int, bytes | None]] = field(default_factory=list)
    attempts: int = 0


def _fresh_version() -> int:
    return secrets.randbelow(2**52) + 1


def _batch(ids: list[bytes], bodies: list[bytes | None], attempts: Any) -> Batch:
    return Batch([(int(i), body) for i, body in zip(ids, bodies, strict=True)], int(attempts or 0))


async def waiting_counts(client: Any, inboxes: list[Inbox]) -> list[int]:
    """How many messages wait in each inbox (all on `client`'s Redis), in one round trip. The one a drain
    is handling stays in its inbox until handled: while a lease is held, the first entry is that one
    and is not counted (a lease left by a drain that died counts one too few until it lapses)."""
    if not inboxes:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for inbox in inboxes:
            pipe.zcard(inbox.keys.inbox)
            pipe.exists(inbox.keys.lease)
        replies = await pipe.execute()
    return [max(0, int(size) - (1 if leased else 0)) for size, leased in zip(replies[::2], replies[1::2], strict=True)]


class Inbox:
    def __init__(self, client: Any, prefix: str, agent_id: str) -> None:
        self.redis = client
        self.prefix = prefix
        self.agent_id = agent_id
        self.keys = AgentKeys(prefix, agent_id)

    async def subscribe(self, topics: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for topic in topics:
                pipe.sadd(subscribers_key(self.prefix, topic), self.agent_id)
            # (Re)started: no process's copy of the agent is current. A random start, not an
            # increment, so that a Redis that lost its data cannot bring back a version in use.
            pipe.set(self.keys.version, _fresh_version())
            await pipe.execute()

    async def unsubscribe(self, topics: list[str]) -> None:
        """Stopped: what waits is dropped and nothing of the agent stays (a version read back as 0
        matches no process's copy: every copy's version was read or set while the key existed)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for topic in topics:
                pipe.srem(subscribers_key(self.prefix, topic), self.agent_id)
            pipe.delete(*self.keys.all())
            await pipe.execute()

    async def drop_topics(self, topics: list[str]) -> None:
        """Stop taking these topics' messages; what waits stays."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for topic in topics:
                pipe.srem(subscribers_key(self.prefix, topic), self.agent_id)
            await pipe.execute()

    async def add(self, messages: list[Message]) -> bool:
        """Queue messages directly (catch-up, a redelivered dead letter); True when a drain must be woken."""
        if not messages:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            for message in messages:
                pipe.zadd(self.keys.inbox, {str(message.id): inbox_score(message)}, nx=True)
                pipe.hset(self.keys.box, str(message.id), message.to_json())
                pipe.hdel(self.keys.attempts, str(message.id))
                pipe.hdel(self.keys.failures, str(message.id))
            pipe.set(self.keys.wake, "1", nx=True, px=WAKE_TTL_MS)
            results = await pipe.execute()
        return bool(results[-1])

    async def begin(self, token: str, lease_ms: int, count: int) -> tuple[bool, int, int, Batch]:
        """Take the lease: (taken, ms left of the holder's lease if not, state version, first batch)."""
        keys = self.keys
        reply = await scripts.run(self.redis, scripts.BEGIN, 5, keys.lease, keys.version, keys.inbox, keys.box,
                                  keys.attempts, token, lease_ms, count)
        if not reply[0]:
            return False, max(0, int(reply[1])), 0, Batch()
        return True, 0, int(reply[1]), _batch(reply[2], reply[3], reply[4])

    async def step(self, token: str, handled: list[int], count: int, next_id: int | None = None) -> Batch | None:
        """Remove the handled messages; then count an attempt of `next_id` (count 0) or take the next batch.
        None: the drain is over (nothing waits; the lease is released). LeaseLost if another drain holds
        the agent now (nothing was removed)."""
        keys = self.keys
        reply = await scripts.run(self.redis, scripts.STEP, 6, keys.inbox, keys.box, keys.wake, keys.lease,
                                  keys.attempts, keys.failures, token, count,
                                  "" if next_id is None else str(next_id), *(str(i) for i in handled))
        if reply[0] == -1:
            raise LeaseLost(self.agent_id)
        if not reply[0]:
            return None
        return _batch(reply[1], reply[2], reply[3])

    async def record_failure(self, message_id: int, reason: str) -> None:
        await self.redis.hset(self.keys.failures, str(message_id), reason[:2000])

    async def uncount(self, message_id: int) -> None:
        """Take back the attempt counted for a handling that an outage, not the message, stopped."""
        await self.redis.hincrby(self.keys.attempts, str(message_id), -1)

    async def last_failure(self, message_id: int) -> str | None:
        reason = await self.redis.hget(self.keys.failures, str(message_id))
        return reason.decode() if reason is not None else None

    async def bump_version(self) -> int:
        """The agent's stored state is about to change: every process's copy of it is now out of
        date (the caller's becomes current again once its save went through)."""
        return int(await self.redis.incr(self.keys.version))

    async def size(self) -> int:
        return await self.redis.zcard(self.keys.inbox)

    async def lease_held(self) -> bool:
        """Whether some drain holds the agent now."""
        return bool(await self.redis.exists(self.keys.lease))

    async def renew_lease(self, token: str, ttl_ms: int) -> bool:
        return bool(await scripts.run(self.redis, scripts.RENEW_LEASE, 1, self.keys.lease, token, ttl_ms))

    async def release_lease(self, token: str) -> None:
        await scripts.run(self.redis, scripts.RELEASE_LEASE, 1, self.keys.lease, token)

    async def wake_if_waiting(self, *, force: bool = False) -> bool:
        """True if messages wait and no drain is due (or, with `force`, even if one is said to be):
        the caller must enqueue one (the flag is now set)."""
        if not await self.size():
            return False
        if force:
            await self.redis.set(self.keys.wake, "1", px=WAKE_TTL_MS)
            return True
        return bool(await self.redis.set(self.keys.wake, "1", nx=True, px=WAKE_TTL_MS))
