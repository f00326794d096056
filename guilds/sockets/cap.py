"""How many sockets a user has open: at most GUILDSITE_WS_MAX_PER_USER, counted over every process.

With Redis each user has a sorted set of their sockets, scored by when each socket's lease runs
out; a process renews its sockets' leases every third of the lease, so the sockets of a process
that died without closing them stop counting within one lease. Embedded, one process counts them
in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field

from django.conf import settings

from messaging.backends.redis.connection import site_client

logger = logging.getLogger(__name__)

LEASE_SECONDS = 90.0

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _key(username: str) -> str:
    return f"{settings.GUILDSITE_CACHE_PREFIX}:sockets:{username}"


@dataclass
class _LoopSockets:
    """The sockets open on one event loop (daphne's, or a test's), and their Redis client."""

    client: object | None = None
    sockets: dict[str, str] = field(default_factory=dict)  # socket id -> username
    renewer: asyncio.Task | None = None


_in_memory: dict[str, set[str]] = {}
_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSockets] = weakref.WeakKeyDictionary()


def _loop_state() -> _LoopSockets:
    loop = asyncio.get_running_loop()
    state = _per_loop.get(loop)
    if state is None:
        state = _per_loop[loop] = _LoopSockets(client=site_client(settings.REDIS_URL, timeout=10))
    return state


async def acquire(username: str, socket_id: str) -> bool:
    """Count a new socket for the user; False when they have the most already."""
    limit = settings.GUILDSITE_WS_MAX_PER_USER
    if not settings.REDIS_URL:
        open_now = _in_memory.setdefault(username, set())
        if len(open_now) >= limit:
            return False
        open_now.add(socket_id)
        return True
    state = _loop_state()
    now = time.time()
    granted = await state.client.eval(_ACQUIRE, 1, _key(username), now, limit, now + LEASE_SECONDS, socket_id,
                                      int(LEASE_SECONDS * 2))
    if granted:
        state.sockets[socket_id] = username
        if state.renewer is None or state.renewer.done():
            state.renewer = asyncio.ensure_future(_renew(state))
    return bool(granted)


async def release(username: str, socket_id: str) -> None:
    if not settings.REDIS_URL:
        _in_memory.get(username, set()).discard(socket_id)
        return
    state = _loop_state()
    state.sockets.pop(socket_id, None)
    await state.client.zrem(_key(username), socket_id)


async def _renew(state: _LoopSockets) -> None:
    while state.sockets:
        await asyncio.sleep(LEASE_SECONDS / 3)
        try:
            expiry = time.time() + LEASE_SECONDS
            async with state.client.pipeline(transaction=False) as pipe:
                for socket_id, username in list(state.sockets.items()):
                    pipe.zadd(_key(username), {socket_id: expiry}, xx=True)
                await pipe.execute()
        except Exception:
            logger.exception("renewing socket leases failed; retrying at the next round")
