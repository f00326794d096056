"""When a guild was last used: a socket open on it, or a message that is not the guild's own bookkeeping.

Cheap by design, no database write: a message only updates this process's memory (`note`). Embedded (no
REDIS_URL) that memory is the record. With Redis every process flushes what it saw, and refreshes the
guilds it holds a socket of, every `check_interval()` into one sorted set
(`{GUILDSITE_CACHE_PREFIX}:guild-activity`, score = last use in ms, only ever raised), so a guild whose
sockets are on another web process is seen as used everywhere. That interval is at most a quarter of
the idle time: an open socket keeps its guild used whichever process holds it.

`mark` writes through at once: a connecting socket marks before it looks whether the guild is suspended,
so a suspension running at the same time sees it (guilds.runtime.suspension).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter

from django.conf import settings
from redis.exceptions import RedisError

from guilds.runtime import formats
from guilds.runtime import loop as runtime_loop
from messaging.backends.redis.connection import site_client
from messaging.message import Message

logger = logging.getLogger(__name__)

HEALTH_TICK = "guildsite.HealthTick"  # guilds.runtime.manager's; not imported, the manager imports much
# The guild's own bookkeeping: a guild that only keeps its health is not used.
BOOKKEEPING = frozenset({
    HEALTH_TICK, formats.HEALTH_CHECK_REQUEST, formats.HEARTBEAT, formats.AGENTS_HEALTH_REPORT, formats.SELF_READY,
    formats.GUILD_STATUS,
})


def idle_seconds() -> float:
    """0: guilds are never suspended."""
    return float(settings.GUILDSITE_GUILD_IDLE_SECONDS)


def check_interval() -> float:
    """How often idle guilds are looked for, and activity flushed: a few times per idle period, at least
    once a minute."""
    return max(0.25, min(60.0, (idle_seconds() or 3600.0) / 4))


class Activity:
    """This process's view (one per process; `activity()`)."""

    def __init__(self) -> None:
        self.latest: dict[str, float] = {}  # guild -> last use seen here (wall clock: compared across processes)
        self.flushed: dict[str, float] = {}
        self.held: Counter[str] = Counter()  # guild -> sockets open here
        self._flusher: asyncio.Task | None = None
        self._redis = None

    def redis(self):
        """The site's Redis (async, on the runtime loop), or None embedded."""
        if not settings.REDIS_URL:
            return None
        if self._redis is None:
            self._redis = site_client(settings.REDIS_URL, timeout=5)
        return self._redis

    @staticmethod
    def _key() -> str:
        return f"{settings.GUILDSITE_CACHE_PREFIX}:guild-activity"

    # --- recording ------------------------------------------------------------------------
    def note(self, guild_id: str, message: Message | None = None) -> None:
        """A message on the guild's bus (the bus calls this on every publish: memory only)."""
        if message is not None and message.format in BOOKKEEPING:
            return
        self.latest[guild_id] = time.time()
        self._keep_flushing()

    def hold(self, guild_id: str) -> None:
        """A socket opened on the guild in this process: used for as long as it stays open."""
        self.held[guild_id] += 1
        self.note(guild_id)

    def release(self, guild_id: str) -> None:
        self.held[guild_id] -= 1
        if self.held[guild_id] <= 0:
            del self.held[guild_id]
        self.note(guild_id)  # idle from now, not from its last refresh

    async def mark(self, guild_id: str) -> None:
        """Used now, written through. Like every read and flush, on the runtime loop (the Redis client's)."""
        now = time.time()
        self.latest[guild_id] = now
        client = self.redis()
        if client is not None:
            await client.zadd(self._key(), {guild_id: now * 1000}, gt=True)
            self.flushed[guild_id] = now

    def forget(self, guild_id: str) -> None:
        self.latest.pop(guild_id, None)
        self.flushed.pop(guild_id, None)

    # --- reading --------------------------------------------------------------------------
    async def last_used(self, guild_ids: list[str]) -> dict[str, float | None]:
        """When each guild was last used, anywhere (None: no record)."""
        now = time.time()
        seen: dict[str, float | None] = {
            g: now if self.held.get(g) else self.latest.get(g) for g in guild_ids
        }
        client = self.redis()
        if client is not None and guild_ids:
            scores = await client.zmscore(self._key(), guild_ids)
            for guild_id, score in zip(guild_ids, scores, strict=True):
                if score is not None:
                    seen[guild_id] = max(seen[guild_id] or 0.0, score / 1000)
        return seen

    # --- flushing (with Redis) ------------------------------------------------------------
    def _keep_flushing(self) -> None:
        if self.redis() is None:
            return  # embedded: this memory is the record
        if self._flusher is not None and not self._flusher.done():
            return
        loop = runtime_loop.runtime_loop()  # where the Redis client lives, whichever thread noted
        if runtime_loop.in_loop(loop):
            self._start_flushing()
        else:
            loop.call_soon_threadsafe(self._start_flushing)

    def _start_flushing(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        flushed = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, check_interval()))  # short naps: a changed setting takes effect soon
            if time.monotonic() < flushed + check_interval():
                continue
            flushed = time.monotonic()
            try:
                await self.flush()
            except (RedisError, OSError) as exc:  # Redis away for a moment: the next round writes it
                logger.warning("could not record guild activity: %s", exc)

    async def flush(self) -> None:
        now = time.time()
        for guild_id in list(self.held):
            self.latest[guild_id] = now
        due = {g: t for g, t in list(self.latest.items()) if t > self.flushed.get(g, 0.0)}
        client = self.redis()
        if not due or client is None:
            return
        await client.zadd(self._key(), {g: t * 1000 for g, t in due.items()}, gt=True)
        self.flushed.update(due)


_activity: Activity | None = None


def _forget_in_child() -> None:
    global _activity
    _activity = None


# A forked worker gets its own (told at the fork: asking for the pid on every publish is a system call).
os.register_at_fork(after_in_child=_forget_in_child)


def activity() -> Activity:
    """This process's."""
    global _activity
    if _activity is None:
        _activity = Activity()
    return _activity
