"""The Celery engine: agents run in Celery workers, over Redis (GUILDSITE_EXECUTION_ENGINE=celery).

No worker owns an agent. Each agent is a durable subscriber (messaging.delivery): its messages wait in
its Redis inbox and a drain (drain.py) handles them in whichever worker process takes it from the drain
lane (lane.py) or, for what is not per message, from Celery's queue. The engine makes the
durable delivery, with its own waking policy (waking.py), and hands it to every bus it builds; the
guild's control (agents.py) and its agents' roster (roster.py) live in Redis, so every process sees the
same guild; beat's ticks and sweeps are in beat.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from redis.exceptions import RedisError

from guilds import process
from guilds.engines.base import ExecutionEngine, note_activity
from guilds.engines.celery import lane
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
from guilds.runtime.manager import manager_start, user_proxy_id
from guilds.runtime.user_proxy import UserProxyAgent, forward_for_proxy, passed_on_by_proxies
from guilds.spec import SpecError, validate_guild_spec
from messaging import topics as topic_names
from messaging.bus import MessagingInterface
from messaging.config import MessagingConfig
from messaging.delivery import DurableDelivery, Inbox, waiting_counts
from messaging.message import Message

logger = logging.getLogger(__name__)

QUEUE_DEPTH_TIMEOUT = 3.0  # seconds: past this a dashboard renders without the counts


class CeleryEngine(ExecutionEngine):
    name = CELERY

    def __init__(self, *, drains_user_proxies: bool | None = None) -> None:
        if drains_user_proxies is None:
            drains_user_proxies = process.role() == process.ProcessRole.WEB
        self.drainer = Drainer(self.guild, functools.partial(self.sweep, force=True), hand_off=self._hand_off)
        self._handing_off: set[asyncio.Task[None]] = set()
        self.waking = Waking(self.drainer.drain, drains_user_proxies=drains_user_proxies, hand_off=self._hand_off)
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
                                                        on_publish=note_activity, stand_in=passed_on_by_proxies)
        return bus

    async def guild(self, guild_id: str, record: Any = None) -> CeleryGuild | None:
        guild = self._guilds.get(guild_id)
        if guild is None:
            record = record or await store.guild_load(guild_id)
            if record is None:
                return None
            spec = validate_guild_spec(record.spec)
            guild = self._guilds[guild_id] = CeleryGuild(guild_id, spec, self.bus(guild_id, spec.properties.messaging),
                                                         retire=self.forget)
        return guild

    def _hand_off(self, guild_id: str, agent_id: str) -> None:
        """Another drain for the agent, now, in whichever worker process takes it: by the drain lane when the
        guild's Redis carries it, else by the queue."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            enqueue(guild_id, agent_id)
            return
        task = loop.create_task(self._to_lane(guild_id, agent_id))
        self._handing_off.add(task)
        task.add_done_callback(self._handing_off.discard)

    async def _to_lane(self, guild_id: str, agent_id: str) -> None:
        try:
            guild = await self.guild(guild_id)
            if guild is not None:
                backend = await guild.backend()
                route = self.waking.drain_push(backend)
                if route is not None:
                    await lane.push(backend.client, route.queue, guild_id, agent_id)
                    return
        except Exception as exc:  # the queue's task waits for Redis if need be
            logger.warning("could not hand agent %s to the drain lane: %s: %s", agent_id, type(exc).__name__, exc,
                           extra={"guild_id": guild_id})
        enqueue(guild_id, agent_id)

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
        try:
            guild = await self.guild(guild_id)
        except SpecError:  # a stored spec a later rule refuses: it could not launch, so nothing of it subscribed
            guild = None
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

    async def forward_for_user(self, guild_id: str, user_id: str, message: Message) -> bool:
        """In the web process, once a drain here has loaded the user's proxy (its tag is known) and while none
        of its drains is due here: the socket routes the message into the guild itself, one store instead of
        four round trips (into the proxy's inbox, its lease, its forward, its acknowledgement). The socket asks
        only once the proxy carried a message of its own since the guild last changed status, and while nothing
        it queued since waits (guilds.consumers): the proxy is up, and the socket's messages keep their order."""
        proxy_id = user_proxy_id(user_id)
        if not self.waking.drains_user_proxies or self.waking.draining_here(guild_id, proxy_id):
            return False
        host = self.drainer.loaded(guild_id, proxy_id)
        if host is None or not isinstance(host.agent, UserProxyAgent):
            return False
        return await forward_for_proxy(host, user_id, message, one_store_only=True)

    async def running_agent_ids(self, guild_id: str) -> list[str]:
        guild = await self.guild(guild_id)
        return await guild.running_agent_ids() if guild is not None else []

    async def queue_depths(self, agents: list[tuple[str, str]],
                           configs: dict[str, MessagingConfig | None]) -> dict[tuple[str, str], int]:
        """The agents' inboxes in Redis: one pipeline per Redis their guilds use (one, on most sites), at most
        QUEUE_DEPTH_TIMEOUT seconds. A guild whose Redis cannot be asked is left out (logged), not raised.
        Read through each guild's bus (its config is given), never by loading the guild: a dashboard's web
        process would otherwise load and keep every guild it ever showed."""
        by_guild: dict[str, list[str]] = {}
        for guild_id, agent_id in agents:
            by_guild.setdefault(guild_id, []).append(agent_id)
        asked: dict[int, tuple[Any, list[tuple[tuple[str, str], Inbox]]]] = {}  # by backend: its client, inboxes
        for guild_id, agent_ids in by_guild.items():
            bus = self.bus(guild_id, configs.get(guild_id))
            try:
                backend = await bus.get_backend()
                client = backend.client
            except Exception as exc:
                logger.warning("queue depths of guild %s unknown: %s: %s", guild_id, type(exc).__name__, exc,
                               extra={"guild_id": guild_id})
                continue
            _, inboxes = asked.setdefault(id(backend), (client, []))
            inboxes += [((guild_id, agent_id), self.delivery.inbox(backend, guild_id, agent_id)) for agent_id in agent_ids]
        depths: dict[tuple[str, str], int] = {}
        for counted in await asyncio.gather(*(self._count(client, inboxes) for client, inboxes in asked.values())):
            depths.update(counted)
        return depths

    @staticmethod
    async def _count(client: Any, inboxes: list[tuple[tuple[str, str], Inbox]]) -> dict[tuple[str, str], int]:
        try:
            async with asyncio.timeout(QUEUE_DEPTH_TIMEOUT):
                counts = await waiting_counts(client, [inbox for _, inbox in inboxes])
        except (RedisError, OSError, TimeoutError) as exc:
            guild_ids = sorted({agent[0] for agent, _ in inboxes})
            logger.warning("queue depths unknown, Redis did not answer: %s: %s", type(exc).__name__, exc,
                           extra={"guild_ids": guild_ids})
            return {}
        return {agent: count for (agent, _), count in zip(inboxes, counts, strict=True)}

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
