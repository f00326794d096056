"""Celery beat's work for the Celery engine: each guild's manager gets its health tick, and a sweep
wakes any agent whose messages wait with no drain due (its task was lost: a worker or Redis went away)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from guilds.engines.celery.agents import CeleryGuild
from guilds.engines.celery.roster import GUILDS_KEY, site_redis
from guilds.runtime.host import MANAGER_ID
from guilds.runtime.manager import HEALTH_TICK
from messaging import topics as topic_names
from messaging.ids import Priority
from messaging.message import AgentTag, Message

logger = logging.getLogger(__name__)


class Beat:
    def __init__(self, guild_of: Callable[[str], Awaitable[CeleryGuild | None]],
                 sweep: Callable[[str], Awaitable[None]]) -> None:
        self.guild_of = guild_of
        self.sweep = sweep

    async def publish_ticks(self) -> int:
        guild_ids = [g.decode() for g in site_redis().smembers(GUILDS_KEY)]
        manager = AgentTag(id=MANAGER_ID, name="GuildManagerAgent")
        for guild_id in guild_ids:
            guild = await self.guild_of(guild_id)
            if guild is None:
                site_redis().srem(GUILDS_KEY, guild_id)
                continue
            try:
                await self.sweep(guild_id)
                await guild.bus.publish(Message.create(
                    sender=manager, topics=topic_names.agent_self_inbox(MANAGER_ID), format=HEALTH_TICK,
                    payload={"at_ms": int(time.time() * 1000)}, priority=Priority.HIGH))
            except Exception:
                logger.exception("health tick failed", extra={"guild_id": guild_id})
        return len(guild_ids)
