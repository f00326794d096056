"""Durable subscribers: agents whose messages wait in a per-agent inbox in Redis until handled.

The Celery engine's agents do not hold a live subscription in any process. Instead, the
Redis backend's store script puts every new message of a topic they subscribe to into
their inbox, atomically with storing it, and says which agents had nothing pending: the
bus passes those to the wake handler (the engine enqueues a drain task). A drain takes
the agent's lease, handles the inbox in order (priority, then time, then id), and removes
each message only after its handler finished, so a crash leaves it there for the next one.

Keys, under `{prefix}d:{namespace}:`: `subs:{topic}` (set of agent ids), `inbox:{agent}`
(sorted set of message ids), `box:{agent}` (hash id → message JSON), `wake:{agent}` (a drain
is due or running), `lease:{agent}` (who drains now), `version:{agent}` (bumped whenever the
agent's stored state or subscription changes: a process's copy of the agent at the same
version is current, so a drain need not reload it from the database).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from messaging.ids import id_timestamp_ms
from messaging.message import Message

if TYPE_CHECKING:
    from messaging.backends.redis import RedisMessagingBackend

logger = logging.getLogger(__name__)

WakeHandler = Callable[[str, list[str]], None]


@dataclass(frozen=True)
class TaskEnqueue:
    """How a store script enqueues a drain task itself, atomically with storing: onto list `queue`,
    `template` with markers for the ids, except for agents whose id starts with `caller_wakes`
    (the wake handler is told of those, as of every agent when there is no TaskEnqueue)."""

    queue: str
    template: str
    caller_wakes: str = ""


TaskTemplate = Callable[["RedisMessagingBackend"], TaskEnqueue | None]
_wake_handler: WakeHandler | None = None
_task_template: TaskTemplate | None = None
# Markers in a task template, replaced by the store script; ids it can write in as they are.
TASK_ID_MARK, NAMESPACE_MARK, AGENT_MARK = "@TASK_ID@", "@NAMESPACE@", "@AGENT@"

# Priority first, then time: 8 priorities x 1e13 ms stays exact in a double (< 2^53).
_PRIORITY_WEIGHT = 10**13
# A wake flag outlives a lost drain task (a worker or Redis gone) by this much at most; beat's
# sweep (guilds.engines.celery) then wakes the agent again.
WAKE_TTL_MS = 10_000

# A drain's first step: take the lease and, if taken, the agent's state version and first batch.
# KEYS: lease, version, inbox, box. ARGV: token, lease ms, batch size.
_BEGIN = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local ids = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[3]) - 1)
local bodies = {}
if #ids > 0 then bodies = redis.call('HMGET', KEYS[4], unpack(ids)) end
return {1, redis.call('GET', KEYS[2]) or '0', ids, bodies}
"""
# Every later step: remove what was handled, then the next batch; with none waiting, end the
# drain in the same atomic step (wake flag cleared, lease released), so that a message can
# never arrive between "nothing waits" and "no drain due" unseen. A batch size of 0 only removes.
# KEYS: inbox, box, wake, lease. ARGV: token, batch size, handled ids... {-1}: the lease is not ours.
_STEP = """
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return {-1} end
if #ARGV > 2 then
  local handled = {unpack(ARGV, 3)}
  redis.call('ZREM', KEYS[1], unpack(handled))
  redis.call('HDEL', KEYS[2], unpack(handled))
end
local count = tonumber(ARGV[2])
if count == 0 then return {1, {}, {}} end
local ids = redis.call('ZRANGE', KEYS[1], 0, count - 1)
if #ids > 0 then return {1, ids, redis.call('HMGET', KEYS[2], unpack(ids))} end
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return {0}
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_SCRIPT_SHAS: dict[str, str] = {}


def inbox_score(message: Message) -> int:
    return (message.priority or 0) * _PRIORITY_WEIGHT + id_timestamp_ms(message.id)


def set_wake_handler(handler: WakeHandler | None, task_template: TaskTemplate | None = None) -> None:
    """Who is told that agents have new messages and no drain due (the engine, per process), and
    how a store script may enqueue the drain itself (see TaskTemplate)."""
    global _wake_handler, _task_template
    _wake_handler = handler
    _task_template = task_template


def task_template(backend: RedisMessagingBackend) -> TaskEnqueue | None:
    return _task_template(backend) if _task_template is not None else None


def wake(namespace: str, agents: list[str]) -> None:
    if agents and _wake_handler is not None:
        _wake_handler(namespace, agents)
    elif agents:
        logger.warning("durable agents %s of %s have messages but no wake handler is set", agents, namespace)


class LeaseLost(Exception):
    """A drain's lease lapsed and another drain holds the agent now."""


def _fresh_version() -> int:
    return secrets.randbelow(2**52) + 1


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
        self.version_key = f"{self.prefix}version:{agent_id}"

    async def subscribe(self, topics: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for topic in topics:
                pipe.sadd(f"{self.prefix}subs:{topic}", self.agent_id)
            # (Re)started: no process's copy of the agent is current. A random start, not an
            # increment, so that a Redis that lost its data cannot bring back a version in use.
            pipe.set(self.version_key, _fresh_version())
            await pipe.execute()

    async def unsubscribe(self, topics: list[str]) -> None:
        """Stopped: what waits is dropped and nothing of the agent stays (a version read back as 0
        matches no process's copy: every copy's version was read or set while the key existed)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for topic in topics:
                pipe.srem(f"{self.prefix}subs:{topic}", self.agent_id)
            pipe.delete(self.inbox_key, self.box_key, self.wake_key, self.version_key)
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

    async def begin(self, token: str, lease_ms: int, count: int) -> tuple[bool, int, int, list[Message]]:
        """Take the lease: (taken, ms left of the holder's lease if not, state version, first batch)."""
        reply = await self._script(_BEGIN, 4, self.lease_key, self.version_key, self.inbox_key, self.box_key,
                                   token, lease_ms, count)
        if not reply[0]:
            return False, max(0, int(reply[1])), 0, []
        return True, 0, int(reply[1]), await self._messages(reply[2], reply[3])

    async def step(self, token: str, handled: list[Message], count: int) -> list[Message] | None:
        """Remove the handled messages and take the next batch; None: the drain is over (see _STEP).
        LeaseLost if another drain holds the agent now (nothing was removed)."""
        reply = await self._script(_STEP, 4, self.inbox_key, self.box_key, self.wake_key, self.lease_key,
                                   token, count, *(str(m.id) for m in handled))
        if reply[0] == -1:
            raise LeaseLost(self.agent_id)
        if not reply[0]:
            return None
        return await self._messages(reply[1], reply[2])

    async def _messages(self, ids: list[bytes], bodies: list[bytes | None]) -> list[Message]:
        messages = []
        for message_id, data in zip(ids, bodies, strict=True):
            if data is None:  # its body is gone: nothing to handle, drop the id
                await self.redis.zrem(self.inbox_key, message_id)
                continue
            messages.append(Message.from_json(data))
        return messages

    async def bump_version(self) -> int:
        """The agent's stored state is about to change: every process's copy of it is now out of
        date (the caller's becomes current again once its save went through)."""
        return int(await self.redis.incr(self.version_key))

    async def size(self) -> int:
        return await self.redis.zcard(self.inbox_key)

    async def renew_lease(self, token: str, ttl_ms: int) -> bool:
        return bool(await self._script(_RENEW_LEASE, 1, self.lease_key, token, ttl_ms))

    async def release_lease(self, token: str) -> None:
        await self._script(_RELEASE_LEASE, 1, self.lease_key, token)

    async def wake_if_waiting(self, *, force: bool = False) -> bool:
        """True if messages wait and no drain is due (or, with `force`, even if one is said to be):
        the caller must enqueue one (the flag is now set)."""
        if not await self.size():
            return False
        if force:
            await self.redis.set(self.wake_key, "1", px=WAKE_TTL_MS)
            return True
        return bool(await self.redis.set(self.wake_key, "1", nx=True, px=WAKE_TTL_MS))

    async def _script(self, source: str, key_count: int, *keys_and_args: object) -> Any:
        """EVALSHA, loading the script once per server (again after a restart emptied its cache)."""
        sha = _SCRIPT_SHAS.get(source) or hashlib.sha1(source.encode()).hexdigest()
        _SCRIPT_SHAS[source] = sha
        try:
            return await self.redis.evalsha(sha, key_count, *keys_and_args)
        except NoScriptError:
            await self.redis.script_load(source)
            return await self.redis.evalsha(sha, key_count, *keys_and_args)
