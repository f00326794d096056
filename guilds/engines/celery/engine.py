"""The Celery engine: agents run in Celery workers, over Redis (GUILDSITE_EXECUTION_ENGINE=celery).

No worker owns an agent. Each agent is a durable subscriber (messaging.delivery): its messages wait in
its Redis inbox and a drain (drain.py) handles them wherever a drain task lands. The engine makes the
durable delivery, with its own waking policy (waking.py), and hands it to every bus it builds; the
guild's control (agents.py) and its agents' roster (roster.py) live in Redis, so every process sees the
same guild; beat's ticks and sweeps are in beat.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from guilds import process
from guilds.engines.base import ExecutionEngine, note_activity
from guilds.engines.celery.agents import CeleryGuild
from guilds.engines.celery.beat import Beat
from guilds.engines.celery.drain import Drainer
from guilds.engines.celery.roster import GUILDS_KEY, site_redis
from guilds.engines.celery.waking import Waking
from guilds.engines.celery.wire import enqueue
from guilds.engines.names import CELERY
from guilds.models import GuildStatus
from guilds.runtime import loop as runtime_loop
from guilds.runtime import store, suspension
from guilds.runtime.host import MANAGER_ID
from guilds.runtime.manager import manager_start
from guilds.spec import GuildSpec
from messaging import topics as topic_names
from messaging.bus import MessagingInterface
from messaging.config import MessagingConfig
from messaging.delivery import DurableDelivery
from messaging.message import Message

logger = logging.getLogger(__name__)


class CeleryEngine(ExecutionEngine):
    name = CELERY

    def __init__(self, *, drains_user_proxies: bool | None = None) -> None:
        if drains_user_proxies is None:
            drains_user_proxies = process.role() == process.ProcessRole.WEB
        self.drainer = Drainer(self.guild, functools.partial(self.sweep, force=True))
        self.waking = Waking(self.drainer.drain, drains_user_proxies=drains_user_proxies)
        self.delivery = DurableDelivery(self.waking)
        self.beat = Beat(self.guild, self.sweep)
        self._guilds: dict[str, CeleryGuild] = {}
        self._buses: dict[tuple[str, str], MessagingInterface] = {}

    # --- buses and guilds ----------------------------------------------------------------
    def bus(self, guild_id: str, config: MessagingConfig | None) -> MessagingInterface:
        key = (guild_id, config.model_dump_json() if config is not None else "")
        bus = self._buses.get(key)
        if bus is None:
            bus = self._buses[key] = MessagingInterface(guild_id, config, delivery=self.delivery,
                                                        on_publish=note_activity)
        return bus

    async def guild(self, guild_id: str, record: Any = None) -> CeleryGuild | None:
        guild = self._guilds.get(guild_id)
        if guild is None:
            record = record or await store.guild_load(guild_id)
            if record is None:
                return None
            spec = GuildSpec.model_validate(record.spec)
            guild = self._guilds[guild_id] = CeleryGuild(guild_id, spec, self.bus(guild_id, spec.properties.messaging),
                                                         retire=self.forget)
        return guild

    # --- the engine interface ------------------------------------------------------------
    def launch_guild(self, guild_id: str) -> None:
        runtime_loop.submit(self.launch(guild_id))

    def is_guild_running(self, guild_id: str) -> bool:
        return runtime_loop.run(self.guild_running(guild_id))

    async def guild_running(self, guild_id: str) -> bool:
        guild = await self.guild(guild_id)
        return guild is not None and MANAGER_ID in await guild.running_agent_ids()

    async def launch(self, guild_id: str, *, resumed: bool = False) -> bool:
        record = await store.guild_load(guild_id)
        if record is None or record.status == GuildStatus.STOPPED:
            return False
        try:
            guild = await self.guild(guild_id, record)
            await guild.backend()  # the Redis backend, or say why not
            await guild.bus.get_messages(topic_names.SYSTEM_TOPIC, limit=1)
            if MANAGER_ID in await guild.running_agent_ids():
                return False
        except Exception as exc:
            detail = f"cannot launch: {type(exc).__name__}: {exc}"
            logger.error("guild launch failed: %s", detail, extra={"guild_id": guild_id})
            await store.guild_status_set(guild_id, GuildStatus.ERROR, detail)
            self._guilds.pop(guild_id, None)
            return False
        if not await manager_start(guild, created_at_ms=int(record.created_at.timestamp() * 1000), resumed=resumed):
            return False
        await asyncio.to_thread(site_redis().sadd, GUILDS_KEY, guild_id)
        return True

    async def wait_stopped(self, guild_id: str, timeout: float) -> bool:
        """After the manager announced STOPPED it retires its guild (in a worker): wait for that."""
        deadline = asyncio.get_running_loop().time() + timeout
        pause = 0.01
        while await self.guild_running(guild_id):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(pause)  # the retiring happens in another process: its roster is what we see
            pause = min(0.2, pause * 2)
        return True

    async def redeliver(self, guild_id: str, agent_id: str, message: Message) -> bool:
        guild = await self.guild(guild_id)
        if guild is None or agent_id not in await guild.running_agent_ids():
            return False
        if await (await guild.inbox(agent_id)).add([message]):
            self.waking.wake(guild_id, [agent_id])
        return True

    async def forget(self, guild_id: str) -> None:
        """Nothing of the guild runs any more: its agents' subscriptions go, and its ticks."""
        guild = await self.guild(guild_id)
        if guild is not None:
            try:
                await guild.stop_all_agents()
                await guild.stop_agent(MANAGER_ID)
            except Exception as exc:  # its messaging backend is gone: nothing there to clean
                logger.warning("could not unsubscribe the agents of guild %s: %s", guild_id, exc)
        await asyncio.to_thread(site_redis().srem, GUILDS_KEY, guild_id)
        self._guilds.pop(guild_id, None)
        self.drainer.forget(guild_id)
        for key in [k for k in self._buses if k[0] == guild_id]:
            del self._buses[key]  # (sockets may still hold it; its backend closes with its last user)

    async def running_agent_ids(self, guild_id: str) -> list[str]:
        guild = await self.guild(guild_id)
        return await guild.running_agent_ids() if guild is not None else []

    async def suspend_idle(self, idle: float | None = None) -> list[str]:
        """Beat's task (guilds.tasks.suspend_idle_guilds), in a worker: the guilds with managers here."""
        guild_ids = [g.decode() for g in await asyncio.to_thread(site_redis().smembers, GUILDS_KEY)]
        return await suspension.suspend_idle(self, sorted(guild_ids), idle)

    async def shutdown(self) -> None:
        self._guilds.clear()
        self._buses.clear()

    async def sweep(self, guild_id: str, *, force: bool = False) -> None:
        """Wake every agent of the guild whose messages wait with no drain due (`force`: even if one is
        said to be due; a spare drain finds the lease taken or the inbox empty)."""
        guild = await self.guild(guild_id)
        if guild is None:
            return
        for agent_id in await guild.running_agent_ids():
            if await (await guild.inbox(agent_id)).wake_if_waiting(force=force):
                enqueue(guild_id, agent_id)
