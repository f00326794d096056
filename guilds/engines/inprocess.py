"""The in-process engine (the embedded default): agents run on this process's runtime loop.

Each agent is a host with its own queue; a slow or blocked handler holds only its own
agent. The manager's health rounds are ticks it receives as messages, like every engine.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings

from guilds.engines.base import ExecutionEngine
from guilds.engines.names import INPROCESS
from guilds.models import GuildStatus
from guilds.runtime import loop as runtime_loop
from guilds.runtime import store
from guilds.runtime.guild import guild_bus, guild_bus_forget
from guilds.runtime.host import MANAGER_ID, AgentHost
from guilds.runtime.manager import HEALTH_TICK, manager_start
from guilds.spec import AgentSpec, GuildSpec
from messaging import topics as topic_names
from messaging.bus import MessagingInterface
from messaging.ids import Priority
from messaging.message import AgentTag, Message

logger = logging.getLogger(__name__)

class InProcessGuild:
    """A guild whose agents run here: the GuildControl the manager uses."""

    def __init__(self, engine: InProcessEngine, guild_id: str, spec: GuildSpec, bus: MessagingInterface) -> None:
        self.engine = engine
        self.guild_id = guild_id
        self.spec = spec
        self.bus = bus
        self.hosts: dict[str, AgentHost] = {}
        self._ticker: asyncio.Task | None = None

    async def start_agent(self, spec: AgentSpec, *, kind: str, catch_up_since_ms: int | None = None) -> None:
        previous = self.hosts.pop(spec.id, None)
        if previous is not None:
            await previous.stop()
        state = await store.agent_record_ensure(
            self.guild_id, agent_id=spec.id, name=spec.name, kind=kind, class_name=spec.class_name,
            spec=spec.model_dump(mode="json"),
        )
        host = AgentHost(guild=self, spec=spec, kind=kind, state=state)
        self.hosts[spec.id] = host
        try:
            await host.start(catch_up_since_ms=catch_up_since_ms)
        except BaseException:
            self.hosts.pop(spec.id, None)
            await host.stop()
            raise

    async def stop_agent(self, agent_id: str) -> None:
        host = self.hosts.pop(agent_id, None)
        if host is not None:
            await host.stop()

    async def stop_all_agents(self) -> None:
        for agent_id in [a for a in self.hosts if a != MANAGER_ID]:
            await self.stop_agent(agent_id)

    async def running_agent_ids(self) -> list[str]:
        return [agent_id for agent_id, host in self.hosts.items() if host.started]

    def schedule_shutdown(self) -> None:
        # Called from the manager's own handler: finish it first, then tear down.
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.engine.forget(self.guild_id)))

    def start_ticker(self) -> None:
        self._ticker = asyncio.ensure_future(self._tick_forever())

    async def _tick_forever(self) -> None:
        manager = AgentTag(id=MANAGER_ID, name="GuildManagerAgent")
        while True:
            await asyncio.sleep(settings.GUILDSITE_HEARTBEAT_INTERVAL)
            try:
                await self.bus.publish(Message.create(sender=manager, topics=topic_names.agent_self_inbox(MANAGER_ID),
                                                      payload={"at_ms": int(time.time() * 1000)}, format=HEALTH_TICK,
                                                      priority=Priority.HIGH))
            except Exception:
                logger.exception("health tick failed", extra={"guild_id": self.guild_id})

    async def shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for agent_id in list(self.hosts):
            await self.stop_agent(agent_id)

    async def idle(self) -> None:
        """Wait until no agent of this guild has work waiting (for tests and benchmarks)."""
        for _ in range(3):
            for host in list(self.hosts.values()):
                await host.idle()


class InProcessEngine(ExecutionEngine):
    name = INPROCESS

    def __init__(self) -> None:
        self.guilds: dict[str, InProcessGuild] = {}
        self._launching: set[str] = set()

    def launch_guild(self, guild_id: str) -> None:
        runtime_loop.submit(self.launch(guild_id))

    def is_guild_running(self, guild_id: str) -> bool:
        return guild_id in self.guilds or guild_id in self._launching

    async def launch(self, guild_id: str) -> bool:
        """Launch on the runtime loop; False if it was already running, stopped or unknown."""
        if guild_id in self.guilds or guild_id in self._launching:
            return False
        self._launching.add(guild_id)
        try:
            return await self._launch(guild_id)
        finally:
            self._launching.discard(guild_id)

    async def _launch(self, guild_id: str) -> bool:
        record = await store.guild_load(guild_id)
        if record is None or record.status == GuildStatus.STOPPED:
            return False
        try:
            spec = GuildSpec.model_validate(record.spec)
            bus = guild_bus(guild_id, spec.properties.messaging)
            await bus.get_messages(topic_names.SYSTEM_TOPIC, limit=1)  # the backend answers, or we say why not
        except Exception as exc:
            detail = f"cannot launch: {type(exc).__name__}: {exc}"
            logger.error("guild launch failed: %s", detail, extra={"guild_id": guild_id})
            await store.guild_status_set(guild_id, GuildStatus.ERROR, detail)
            return False
        guild = InProcessGuild(self, guild_id, spec, bus)
        self.guilds[guild_id] = guild
        if not await manager_start(guild, created_at_ms=int(record.created_at.timestamp() * 1000)):
            self.guilds.pop(guild_id, None)
            return False
        if self.guilds.get(guild_id) is guild:  # not stopped while it was starting
            guild.start_ticker()
        return True

    async def forget(self, guild_id: str) -> None:
        guild = self.guilds.pop(guild_id, None)
        if guild is not None:
            await guild.shutdown()
        guild_bus_forget(guild_id)

    async def shutdown(self) -> None:
        for guild_id in list(self.guilds):
            await self.forget(guild_id)
