"""The in-process engine (the embedded default): agents run on this process's runtime loop.

Each agent is a host with its own queue; a slow or blocked handler holds only its own
agent. The manager's health rounds are ticks it receives as messages, like every engine. One
process runs a guild: it holds the guild's lease (runners.py) while it does.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings

from guilds.engines.base import ExecutionEngine, note_activity
from guilds.engines.names import INPROCESS
from guilds.engines.runners import RunnerLeases
from guilds.models import GuildStatus
from guilds.runtime import activity, store, suspension
from guilds.runtime import loop as runtime_loop
from guilds.runtime.host import MANAGER_ID, AgentHost, LiveDelivery
from guilds.runtime.manager import HEALTH_TICK, manager_start, user_proxy_id
from guilds.runtime.user_proxy import UserProxyAgent, forward_for_proxy, passed_on_by_proxies
from guilds.spec import AgentSpec, GuildSpec, validate_guild_spec
from messaging import topics as topic_names
from messaging.bus import MessagingInterface
from messaging.config import MessagingConfig
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
        record = await store.agent_record_ensure(
            self.guild_id, agent_id=spec.id, name=spec.name, kind=kind, class_name=spec.class_name,
            spec=spec.model_dump(mode="json"),
        )
        host = AgentHost(guild=self, spec=spec, kind=kind, state=record.state, runtime=record.runtime)
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
        self.leases = RunnerLeases()
        self._launching: set[str] = set()
        self._buses: dict[tuple[str, str], MessagingInterface] = {}
        self._stopped: dict[str, asyncio.Event] = {}
        self._idle_check: asyncio.Task | None = None

    def bus(self, guild_id: str, config: MessagingConfig | None) -> MessagingInterface:
        key = (guild_id, config.model_dump_json() if config is not None else "")
        bus = self._buses.get(key)
        if bus is None:
            bus = self._buses[key] = MessagingInterface(guild_id, config, on_publish=note_activity,
                                                        stand_in=passed_on_by_proxies)
        return bus

    def launch_guild(self, guild_id: str) -> None:
        runtime_loop.submit(self.launch(guild_id))

    def is_guild_running(self, guild_id: str) -> bool:
        """Here, or in another process (it holds the guild's lease)."""
        if guild_id in self.guilds or guild_id in self._launching:
            return True
        return runtime_loop.run(self.leases.held_elsewhere(guild_id))

    async def launch(self, guild_id: str, *, resumed: bool = False) -> bool:
        """Launch on the runtime loop; False if it was already running, stopped or unknown."""
        if guild_id in self.guilds or guild_id in self._launching:
            return False
        self._launching.add(guild_id)
        try:
            if not await self.leases.take(guild_id, on_lost=lambda: self.forget(guild_id)):
                return False  # another process runs it
            self._keep_checking_idle()
            launched = await self._launch(guild_id, resumed)
            if not launched and guild_id not in self.guilds:
                await self.leases.release(guild_id)
            return launched
        finally:
            self._launching.discard(guild_id)

    async def _launch(self, guild_id: str, resumed: bool) -> bool:
        record = await store.guild_load(guild_id)
        if record is None or record.status == GuildStatus.STOPPED:
            return False
        try:
            spec = validate_guild_spec(record.spec)
            bus = self.bus(guild_id, spec.properties.messaging)
            await bus.get_messages(topic_names.SYSTEM_TOPIC, limit=1)  # the backend answers, or we say why not
        except Exception as exc:
            detail = f"cannot launch: {type(exc).__name__}: {exc}"
            logger.error("guild launch failed: %s", detail, extra={"guild_id": guild_id})
            await store.guild_status_set(guild_id, GuildStatus.ERROR, detail)
            return False
        guild = InProcessGuild(self, guild_id, spec, bus)
        self.guilds[guild_id] = guild
        if not await manager_start(guild, created_at_ms=int(record.created_at.timestamp() * 1000), resumed=resumed):
            self.guilds.pop(guild_id, None)
            return False
        if self.guilds.get(guild_id) is guild:  # not stopped while it was starting
            guild.start_ticker()
        return True

    # --- idle guilds ------------------------------------------------------------------------
    def _keep_checking_idle(self) -> None:
        if self._idle_check is None or self._idle_check.done():
            self._idle_check = asyncio.ensure_future(self._check_idle_forever())

    async def _check_idle_forever(self) -> None:
        """The guilds this process runs, looked at every activity.check_interval() (the setting is read
        each round: at most a second's sleep, so a changed setting takes effect soon)."""
        checked = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, activity.check_interval()))
            if time.monotonic() < checked + activity.check_interval():
                continue
            checked = time.monotonic()
            try:
                await self.suspend_idle()
            except Exception:
                logger.exception("looking for idle guilds failed")

    async def forward_for_user(self, guild_id: str, user_id: str, message: Message) -> bool:
        """While the user's proxy runs here with nothing waiting or under way, the socket routes the message into
        the guild itself: one store instead of two, and no turn through the proxy's queue. The socket's own
        messages keep their order: it asks only once none of them waits for the proxy (guilds.consumers)."""
        guild = self.guilds.get(guild_id)
        proxy = guild.hosts.get(user_proxy_id(user_id)) if guild is not None else None
        if proxy is None or not proxy.started or not isinstance(proxy.agent, UserProxyAgent) \
                or not isinstance(proxy.delivery, LiveDelivery) or proxy.delivery.busy:
            return False
        return await forward_for_proxy(proxy, user_id, message)

    async def running_agent_ids(self, guild_id: str) -> list[str]:
        guild = self.guilds.get(guild_id)
        return await guild.running_agent_ids() if guild is not None else []

    async def queue_depths(self, agents: list[tuple[str, str]],
                           configs: dict[str, MessagingConfig | None]) -> dict[tuple[str, str], int]:
        """What waits in each agent's client here (no I/O). A guild another process runs answers 0: its
        queues are in that process."""
        depths: dict[tuple[str, str], int] = {}
        for guild_id, agent_id in agents:
            guild = self.guilds.get(guild_id)
            host = guild.hosts.get(agent_id) if guild is not None else None
            depths[(guild_id, agent_id)] = host.delivery.waiting if host is not None else 0
        return depths

    async def suspend_idle(self, idle: float | None = None) -> list[str]:
        return await suspension.suspend_idle(self, list(self.guilds), idle)

    async def wait_stopped(self, guild_id: str, timeout: float) -> bool:
        if guild_id not in self.guilds:
            return await self._lease_gone(guild_id, timeout)  # run by another process: its lease goes at the end
        stopped = self._stopped.setdefault(guild_id, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                await stopped.wait()
        except TimeoutError:
            return False
        return True

    async def _lease_gone(self, guild_id: str, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        pause = 0.01
        while await self.leases.held_elsewhere(guild_id):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(pause)  # another process retires it: its lease is what this one sees
            pause = min(0.2, pause * 2)
        return True

    async def redeliver(self, guild_id: str, agent_id: str, message: Message) -> bool:
        guild = self.guilds.get(guild_id)
        host = guild.hosts.get(agent_id) if guild is not None else None
        if host is None or not host.started:
            return False
        await host.delivery.enqueue(host, [message])
        return True

    async def forget(self, guild_id: str) -> None:
        guild = self.guilds.pop(guild_id, None)
        if guild is not None:
            await guild.shutdown()
            await self.leases.release(guild_id)
        for key in [k for k in self._buses if k[0] == guild_id]:
            del self._buses[key]  # (buses share their backend: it closes with its last user)
        stopped = self._stopped.pop(guild_id, None)
        if stopped is not None:
            stopped.set()

    async def shutdown(self) -> None:
        for guild_id in list(self.guilds):
            await self.forget(guild_id)
