"""The Celery engine: agents run in Celery workers, over Redis (GUILDSITE_EXECUTION_ENGINE=celery).

No worker owns an agent. Each agent is a durable subscriber (messaging.durable): new messages
wait in its Redis inbox, and the first one to arrive while nothing is due enqueues a
`drain_agent` task. Whichever worker takes it holds the agent's lease (so per agent one
message at a time, in order, whatever the worker), handles every waiting message, and
removes each only once its handler finished: a worker killed mid-message leaves it for the
next drain (its task is redelivered at once, `reject_on_worker_lost`, and waits out the
lease of a few seconds). A re-run derives the same outgoing ids, and storing is idempotent
per id, so nothing is doubled. Celery beat sends the managers their health ticks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis as sync_redis
from django.conf import settings

from guilds.engines.base import ExecutionEngine
from guilds.engines.names import CELERY
from guilds.models import GuildStatus
from guilds.runtime import loop as runtime_loop
from guilds.runtime import store
from guilds.runtime.guild import guild_bus, guild_bus_forget
from guilds.runtime.host import MANAGER_ID, AgentHost
from guilds.runtime.manager import HEALTH_TICK, manager_start
from guilds.spec import AgentSpec, GuildSpec
from messaging import durable
from messaging import topics as topic_names
from messaging.backends.redis import RedisMessagingBackend
from messaging.bus import MessagingInterface
from messaging.ids import Priority
from messaging.message import AgentTag, Message

logger = logging.getLogger(__name__)

LEASE_MS = 3000  # renewed every second while draining; a dead drainer's lease lapses this fast
DRAIN_SLICE_SECONDS = 2.0  # then the task re-enqueues itself, so one busy agent cannot hold a worker slot
BATCH = 64
MEMORY = "_memory"
GUILDS_KEY = "gs:celery:guilds"  # guilds whose managers want health ticks


def _agents_key(guild_id: str) -> str:
    return f"gs:celery:agents:{guild_id}"


def _topics_key(guild_id: str, agent_id: str) -> str:
    return f"gs:celery:topics:{guild_id}:{agent_id}"


@cache
def _redis() -> sync_redis.Redis:
    return sync_redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=2)


class DurableDelivery:
    """Delivery for a Celery agent: a durable inbox instead of a live client."""

    def __init__(self, inbox: durable.Inbox) -> None:
        self.inbox = inbox

    async def attach(self, host: AgentHost, topics: list[str]) -> None:
        await self.inbox.subscribe(topics)
        await self.inbox.redis.sadd(_topics_key(host.guild.guild_id, host.agent_id), *topics)
        await self.inbox.redis.sadd(_agents_key(host.guild.guild_id), host.agent_id)

    async def enqueue(self, host: AgentHost, messages: list[Message]) -> None:
        if await self.inbox.add(messages):
            durable.wake(host.guild.guild_id, [host.agent_id])

    async def detach(self, host: AgentHost) -> None:
        topics_key = _topics_key(host.guild.guild_id, host.agent_id)
        topics = [t.decode() for t in await self.inbox.redis.smembers(topics_key)]
        await self.inbox.unsubscribe(topics)
        await self.inbox.redis.delete(topics_key)
        await self.inbox.redis.srem(_agents_key(host.guild.guild_id), host.agent_id)

    async def idle(self) -> None:
        while await self.inbox.size():
            await asyncio.sleep(0.01)


class CeleryGuild:
    """The GuildControl of a guild whose agents run in workers (one per guild per process)."""

    def __init__(self, guild_id: str, spec: GuildSpec, bus: MessagingInterface) -> None:
        self.guild_id = guild_id
        self.spec = spec
        self.bus = bus

    async def inbox(self, agent_id: str) -> durable.Inbox:
        backend = await self.bus.get_backend()
        if not isinstance(backend, RedisMessagingBackend):
            raise RuntimeError("the Celery engine needs the Redis messaging backend")
        return durable.Inbox(backend, self.guild_id, agent_id)

    async def host(self, spec: AgentSpec, kind: str, state: dict[str, Any]) -> AgentHost:
        return AgentHost(guild=self, spec=spec, kind=kind, state=state,
                         delivery=DurableDelivery(await self.inbox(spec.id)))

    async def start_agent(self, spec: AgentSpec, *, kind: str, catch_up_since_ms: int | None = None) -> None:
        state = await store.agent_record_ensure(
            self.guild_id, agent_id=spec.id, name=spec.name, kind=kind, class_name=spec.class_name,
            spec=spec.model_dump(mode="json"),
        )
        host = await self.host(spec, kind, state)
        await host.start(catch_up_since_ms=catch_up_since_ms)

    async def stop_agent(self, agent_id: str) -> None:
        inbox = await self.inbox(agent_id)
        topics = [t.decode() for t in await inbox.redis.smembers(_topics_key(self.guild_id, agent_id))]
        await inbox.unsubscribe(topics)
        await inbox.redis.delete(_topics_key(self.guild_id, agent_id))
        await inbox.redis.srem(_agents_key(self.guild_id), agent_id)

    async def stop_all_agents(self) -> None:
        for agent_id in await self.running_agent_ids():
            if agent_id != MANAGER_ID:
                await self.stop_agent(agent_id)

    async def running_agent_ids(self) -> list[str]:
        inbox = await self.inbox(MANAGER_ID)
        return sorted(a.decode() for a in await inbox.redis.smembers(_agents_key(self.guild_id)))

    def schedule_shutdown(self) -> None:
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(engine().forget(self.guild_id)))


@dataclass
class DrainOutcome:
    handled: int = 0
    retry_in: float | None = None  # another drain holds the lease: try again after this many seconds
    more: bool = False  # the time slice ran out with messages waiting


class CeleryEngine(ExecutionEngine):
    name = CELERY

    def __init__(self) -> None:
        self._guilds: dict[str, CeleryGuild] = {}
        self._hosts: dict[tuple[str, str], AgentHost] = {}
        durable.set_wake_handler(self._wake)

    # --- the server side -----------------------------------------------------------------
    def _wake(self, guild_id: str, agent_ids: list[str]) -> None:
        from guilds.tasks import drain_agent

        for agent_id in agent_ids:
            logger.debug("waking agent %s of guild %s", agent_id, guild_id)
            drain_agent.apply_async((guild_id, agent_id))

    def launch_guild(self, guild_id: str) -> None:
        runtime_loop.submit(self.launch(guild_id))

    def is_guild_running(self, guild_id: str) -> bool:
        return runtime_loop.run(self.guild_running(guild_id))

    async def guild_running(self, guild_id: str) -> bool:
        guild = await self.guild(guild_id)
        return guild is not None and MANAGER_ID in await guild.running_agent_ids()

    async def guild(self, guild_id: str, record: Any = None) -> CeleryGuild | None:
        guild = self._guilds.get(guild_id)
        if guild is None:
            record = record or await store.guild_load(guild_id)
            if record is None:
                return None
            spec = GuildSpec.model_validate(record.spec)
            guild = self._guilds[guild_id] = CeleryGuild(guild_id, spec, guild_bus(guild_id, spec.properties.messaging))
        return guild

    async def launch(self, guild_id: str) -> bool:
        record = await store.guild_load(guild_id)
        if record is None or record.status == GuildStatus.STOPPED:
            return False
        try:
            guild = await self.guild(guild_id, record)
            await guild.inbox(MANAGER_ID)  # the Redis backend, or say why not
            await guild.bus.get_messages(topic_names.SYSTEM_TOPIC, limit=1)
            if MANAGER_ID in await guild.running_agent_ids():
                return False
        except Exception as exc:
            detail = f"cannot launch: {type(exc).__name__}: {exc}"
            logger.error("guild launch failed: %s", detail, extra={"guild_id": guild_id})
            await store.guild_status_set(guild_id, GuildStatus.ERROR, detail)
            self._guilds.pop(guild_id, None)
            return False
        if not await manager_start(guild, created_at_ms=int(record.created_at.timestamp() * 1000)):
            return False
        _redis().sadd(GUILDS_KEY, guild_id)
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
        _redis().srem(GUILDS_KEY, guild_id)
        self._guilds.pop(guild_id, None)
        for key in [k for k in self._hosts if k[0] == guild_id]:
            del self._hosts[key]
        guild_bus_forget(guild_id)

    async def shutdown(self) -> None:
        self._guilds.clear()
        self._hosts.clear()

    # --- the worker side -----------------------------------------------------------------
    async def drain(self, guild_id: str, agent_id: str) -> DrainOutcome:
        """Handle what waits in one agent's inbox (see the module docstring)."""
        outcome = DrainOutcome()
        guild = await self.guild(guild_id)
        if guild is None:
            logger.warning("drain for an unknown guild %s (agent %s): nothing to do", guild_id, agent_id)
            return outcome
        inbox = await guild.inbox(agent_id)
        token = uuid.uuid4().hex
        if not await inbox.take_lease(token, LEASE_MS):
            outcome.retry_in = max(0.05, await inbox.lease_left_ms() / 1000)
            return outcome
        renewer = asyncio.ensure_future(self._keep_lease(inbox, token))
        try:
            host = await self._host(guild, agent_id)
            if host is None:
                logger.warning("drain for agent %s of guild %s, which is not (or no longer) running", agent_id, guild_id)
                await inbox.settle_wake()
                return outcome
            deadline = time.monotonic() + DRAIN_SLICE_SECONDS
            while True:
                batch = await inbox.peek(BATCH)
                if not batch:
                    if await inbox.settle_wake():
                        continue
                    return outcome
                for message in batch:
                    await host.handle(message)
                    await self._remember(host)
                    await inbox.done(message)
                    outcome.handled += 1
                if time.monotonic() > deadline:
                    outcome.more = True
                    return outcome
        finally:
            renewer.cancel()
            await inbox.release_lease(token)

    async def _keep_lease(self, inbox: durable.Inbox, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            await inbox.renew_lease(token, LEASE_MS)

    async def _host(self, guild: CeleryGuild, agent_id: str) -> AgentHost | None:
        """The agent, ready to handle: rebuilt from its record, state as stored now (another
        worker may have changed it), in-memory fields restored."""
        record = await store.agent_record(guild.guild_id, agent_id)
        if record is None or record.status == "stopped":
            return None
        host = self._hosts.get((guild.guild_id, agent_id))
        if host is None:
            host = await guild.host(AgentSpec.model_validate(record.spec), record.kind, record.state)
            host.prepare()
            host.started = True
            host._ready.set()  # its on_start ran when it was started, wherever that was
            self._hosts[(guild.guild_id, agent_id)] = host
        host.state = dict(record.state or {})
        host.agent.import_memory(host.state.get(MEMORY))
        return host

    async def _remember(self, host: AgentHost) -> None:
        memory = host.agent.export_memory()
        if memory is not None and memory != host.state.get(MEMORY):
            await host.state_update({MEMORY: memory})

    async def publish_ticks(self) -> int:
        """Celery beat: a health tick to every Celery guild's manager, and a sweep that wakes any
        agent whose messages wait with no drain due (its task was lost: a worker or Redis went away)."""
        guild_ids = [g.decode() for g in _redis().smembers(GUILDS_KEY)]
        manager = AgentTag(id=MANAGER_ID, name="GuildManagerAgent")
        for guild_id in guild_ids:
            guild = await self.guild(guild_id)
            if guild is None:
                _redis().srem(GUILDS_KEY, guild_id)
                continue
            try:
                for agent_id in await guild.running_agent_ids():
                    if await (await guild.inbox(agent_id)).wake_if_waiting():
                        self._wake(guild_id, [agent_id])
                await guild.bus.publish(Message.create(
                    sender=manager, topics=topic_names.agent_self_inbox(MANAGER_ID), format=HEALTH_TICK,
                    payload={"at_ms": int(time.time() * 1000)}, priority=Priority.HIGH))
            except Exception:
                logger.exception("health tick failed", extra={"guild_id": guild_id})
        return len(guild_ids)


def engine() -> CeleryEngine:
    from guilds.engines import engine_named

    return engine_named(CELERY)
