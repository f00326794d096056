"""Who runs a guild's in-process agents: one process at a time, by a lease.

With Redis (every production site) the lease is a key, `{GUILDSITE_CACHE_PREFIX}:runner:{guild}`, taken
atomically (SET NX, so a launch is not check-then-act) and renewed while the process runs the guild;
two web processes on one database and Redis never both run it, and a process that dies frees it
within one lease. Embedded (one process, no Redis) the lease is this process's own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from django.conf import settings
from redis.exceptions import RedisError

from messaging.backends.redis.connection import site_client
from messaging.delivery import scripts  # a lease is a lease: the same scripts as an agent's

logger = logging.getLogger(__name__)

LEASE_MS = 10_000
RENEW_EVERY = LEASE_MS / 1000 / 3



class RunnerLeases:
    def __init__(self) -> None:
        self.token = uuid.uuid4().hex  # this process
        self._held: dict[str, asyncio.Task[None]] = {}
        self._redis = None

    def _client(self):
        if not settings.REDIS_URL:
            return None
        if self._redis is None:
            self._redis = site_client(settings.REDIS_URL, timeout=10)
        return self._redis

    @staticmethod
    def _key(guild_id: str) -> str:
        return f"{settings.GUILDSITE_CACHE_PREFIX}:runner:{guild_id}"

    async def take(self, guild_id: str, on_lost: Callable[[], Awaitable[None]]) -> bool:
        """Take the guild's lease; False if another process holds it. `on_lost` runs if it is lost later."""
        client = self._client()
        if client is not None and not await client.set(self._key(guild_id), self.token, nx=True, px=LEASE_MS):
            return False
        if client is not None:
            self._held[guild_id] = asyncio.ensure_future(self._keep(client, guild_id, on_lost))
        return True

    async def held_elsewhere(self, guild_id: str) -> bool:
        client = self._client()
        if client is None:
            return False
        holder = await client.get(self._key(guild_id))
        return holder is not None and holder.decode() != self.token

    async def release(self, guild_id: str) -> None:
        keeper = self._held.pop(guild_id, None)
        if keeper is not None:
            keeper.cancel()
        client = self._client()
        if client is not None:
            try:
                await scripts.run(client, scripts.RELEASE_LEASE, 1, self._key(guild_id), self.token)
            except RedisError as exc:  # it lapses on its own
                logger.warning("could not release the lease of guild %s: %s", guild_id, exc)

    async def _keep(self, client, guild_id: str, on_lost: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                renewed = await scripts.run(client, scripts.RENEW_LEASE, 1, self._key(guild_id), self.token, LEASE_MS)
            except RedisError as exc:  # Redis away for a moment: the next round tries again
                logger.warning("could not renew the lease of guild %s: %s", guild_id, exc)
                continue
            if not renewed:
                logger.error("lost the lease of guild %s (another process runs it now): stopping it here",
                             guild_id, extra={"guild_id": guild_id})
                self._held.pop(guild_id, None)
                await on_lost()
                return
