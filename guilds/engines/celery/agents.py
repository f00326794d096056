"""A guild whose agents run in Celery workers: its GuildControl, and how its agents get messages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from guilds.engines.celery.roster import Roster
from guilds.runtime import store
from guilds.runtime.host import MANAGER_ID, AgentHost
from guilds.spec import AgentSpec, GuildSpec
from messaging.backends.redis import RedisMessagingBackend
from messaging.bus import MessagingInterface
from messaging.delivery import Inbox
from messaging.message import Message


class InboxDelivery:
    """A Celery agent's delivery: a durable inbox instead of a live client."""

    def __init__(self, inbox: Inbox, roster: Roster) -> None:
        self.inbox = inbox
        self.roster = roster
        self.version = -1  # of the agent's state, as this copy has it (see Inbox.bump_version)

    async def attach(self, host: AgentHost, topics: list[str]) -> None:
        await self.inbox.subscribe(topics)
        await self.roster.joined(host.agent_id, topics)

    async def enqueue(self, host: AgentHost, messages: list[Message]) -> None:
        if await self.inbox.add(messages):
            host.guild.bus.delivery.woken(host.guild.guild_id, [host.agent_id], host.collect_woken)

    async def detach(self, host: AgentHost) -> None:
        await self.inbox.unsubscribe(await self.roster.topics(host.agent_id))
        await self.roster.left(host.agent_id)

    async def unsubscribe(self, host: AgentHost, topic: str) -> None:
        await self.inbox.drop_topics([topic])
        await self.roster.dropped(host.agent_id, [topic])

    async def state_saving(self, host: AgentHost) -> int:
        self.version = -1  # until the save went through: a failed save means reload
        return await self.inbox.bump_version()

    def state_saved(self, host: AgentHost, token: object) -> None:
        self.version = token

    async def idle(self) -> None:
        while await self.inbox.size():
            await asyncio.sleep(0.01)


class CeleryGuild:
    """The GuildControl of a guild whose agents run in workers (one per guild per process)."""

    def __init__(self, guild_id: str, spec: GuildSpec, bus: MessagingInterface,
                 retire: Callable[[str], Awaitable[None]]) -> None:
        self.retire = retire  # the engine forgets the guild in this process
        self.guild_id = guild_id
        self.spec = spec
        self.bus = bus

    async def backend(self) -> RedisMessagingBackend:
        backend = await self.bus.get_backend()
        if not isinstance(backend, RedisMessagingBackend):
            raise RuntimeError("the Celery engine needs the Redis messaging backend")
        return backend

    async def inbox(self, agent_id: str) -> Inbox:
        return self.bus.delivery.inbox(await self.backend(), self.guild_id, agent_id)

    async def roster(self) -> Roster:
        return Roster((await self.backend()).client, self.guild_id)

    async def host(self, spec: AgentSpec, kind: str, state: dict[str, Any], runtime: dict[str, Any]) -> AgentHost:
        return AgentHost(guild=self, spec=spec, kind=kind, state=state, runtime=runtime,
                         delivery=InboxDelivery(await self.inbox(spec.id), await self.roster()))

    async def start_agent(self, spec: AgentSpec, *, kind: str, catch_up_since_ms: int | None = None) -> None:
        record = await store.agent_record_ensure(
            self.guild_id, agent_id=spec.id, name=spec.name, kind=kind, class_name=spec.class_name,
            spec=spec.model_dump(mode="json"),
        )
        host = await self.host(spec, kind, record.state, record.runtime)
        await host.start(catch_up_since_ms=catch_up_since_ms)

    async def stop_agent(self, agent_id: str) -> None:
        roster = await self.roster()
        await (await self.inbox(agent_id)).unsubscribe(await roster.topics(agent_id))
        await roster.left(agent_id)

    async def stop_all_agents(self) -> None:
        for agent_id in await self.running_agent_ids():
            if agent_id != MANAGER_ID:
                await self.stop_agent(agent_id)

    async def running_agent_ids(self) -> list[str]:
        return await (await self.roster()).agent_ids()

    def schedule_shutdown(self) -> None:
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.retire(self.guild_id)))
