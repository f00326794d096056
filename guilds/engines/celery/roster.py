"""Which agents of a guild run on the Celery engine, and the topics each is subscribed to (in Redis,
so every process sees the same: a worker, the web server, beat)."""

from __future__ import annotations

from functools import cache
from typing import Any

import redis as sync_redis
from django.conf import settings

GUILDS_KEY = "gs:celery:guilds"  # guilds whose managers want health ticks, in the site's Redis (REDIS_URL)


@cache
def site_redis() -> sync_redis.Redis:
    return sync_redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=2)


def _agents_key(guild_id: str) -> str:
    return f"gs:celery:agents:{guild_id}"


def _topics_key(guild_id: str, agent_id: str) -> str:
    return f"gs:celery:topics:{guild_id}:{agent_id}"


class Roster:
    def __init__(self, client: Any, guild_id: str) -> None:
        self.redis = client
        self.guild_id = guild_id

    async def joined(self, agent_id: str, topics: list[str]) -> None:
        if topics:
            await self.redis.sadd(_topics_key(self.guild_id, agent_id), *topics)
        await self.redis.sadd(_agents_key(self.guild_id), agent_id)

    async def dropped(self, agent_id: str, topics: list[str]) -> None:
        await self.redis.srem(_topics_key(self.guild_id, agent_id), *topics)

    async def topics(self, agent_id: str) -> list[str]:
        return [t.decode() for t in await self.redis.smembers(_topics_key(self.guild_id, agent_id))]

    async def left(self, agent_id: str) -> None:
        await self.redis.delete(_topics_key(self.guild_id, agent_id))
        await self.redis.srem(_agents_key(self.guild_id), agent_id)

    async def agent_ids(self) -> list[str]:
        return sorted(a.decode() for a in await self.redis.smembers(_agents_key(self.guild_id)))
