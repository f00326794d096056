"""GuildManagerAgent: brings the guild up, keeps its health, adds users, answers who is here, stops it.

It runs as an agent like any other (one message at a time), so launch, heartbeats,
joins and stop never race each other. Launch follows seed 000 §2.2: PENDING_LAUNCH,
a SelfReady to itself, STARTING while the spec's agents start, RUNNING once every agent
has answered, with an AgentsHealthReport on the guild's status topic at each step.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from guilds.models import AgentKind, GuildStatus
from guilds.runtime import formats, health, store
from guilds.runtime.agent import Agent, handles
from guilds.runtime.context import HandlerContext
from guilds.runtime.health import HealthTable, iso_now
from guilds.runtime.host import MANAGER_ID
from guilds.spec import USER_PROXY_ID_PREFIX, AgentSpec
from messaging import topics as topic_names
from messaging.ids import Priority

logger = logging.getLogger(__name__)

USER_PROXY_CLASS = "guilds.runtime.user_proxy.UserProxyAgent"
HEALTH_TICK = "guildsite.HealthTick"


def user_proxy_id(user_id: str) -> str:
    return f"{USER_PROXY_ID_PREFIX}{user_id}"


MANAGER_CLASS = "guilds.runtime.manager.GuildManagerAgent"


async def manager_start(guild: Any, *, created_at_ms: int, resumed: bool = False) -> bool:
    """Start a guild's manager on `guild` (a GuildControl of any engine); on failure the guild is
    ERROR with the reason. Requests sent since the guild was created (or since the cursor the
    manager keeps) wait for it. `resumed`: the guild was suspended, its status stays as it is."""
    properties: dict[str, Any] = {"launched_at_ms": int(time.time() * 1000)}
    if resumed:
        properties["resumed"] = True
    spec = AgentSpec(
        id=MANAGER_ID, name="GuildManagerAgent", description="Runs the guild", class_name=MANAGER_CLASS,
        listen_to_default_topic=False, properties=properties,
    )
    try:
        await guild.start_agent(spec, kind=AgentKind.SYSTEM, catch_up_since_ms=created_at_ms)
    except Exception as exc:
        await store.guild_status_set(guild.guild_id, GuildStatus.ERROR, f"manager failed to start: {exc}")
        logger.exception("guild manager failed to start", extra={"guild_id": guild.guild_id})
        return False
    return True


class GuildManagerAgent(Agent):
    """Launches the guild's agents, keeps their health, creates user proxies, stops the guild."""

    kind = "system"

    class Properties(BaseModel):
        model_config = ConfigDict(extra="forbid")
        launched_at_ms: int | None = None
        resumed: bool = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.health = HealthTable()
        self.status: str = GuildStatus.REQUESTED
        self.launched = False
        self.stopping = False

    def extra_topics(self) -> list[str]:
        return [topic_names.SYSTEM_TOPIC]

    # A user who connects while the guild is still launching has asked to join before we listened.
    keeps_catch_up_cursor = True

    def catch_up_topics(self) -> list[str]:
        return [topic_names.SYSTEM_TOPIC]

    @property
    def guild(self):
        return self.host.guild

    # What the manager keeps between messages. An engine that does not keep the agent object
    # alive between messages (Celery workers) saves and restores it around each message.
    def export_memory(self) -> dict[str, Any]:
        return {"status": self.status, "launched": self.launched, "stopping": self.stopping,
                "health": self.health.export()}

    def import_memory(self, memory: dict[str, Any] | None) -> None:
        if memory:
            self.status = memory["status"]
            self.launched = memory["launched"]
            self.stopping = memory["stopping"]
            self.health = HealthTable.restore(memory["health"])
            for agent_id, entry in list(self.health.agents.items()):  # saved by an earlier release: rows say
                if entry.kind == AgentKind.HUMAN and entry.status == health.OK:
                    self.health.forget(agent_id)

    async def on_start(self, ctx: HandlerContext) -> None:
        self.status = await store.guild_status(self.guild_id) or GuildStatus.REQUESTED
        # A suspended guild resumes transparently: RUNNING (or WARNING) it was, so it stays while its agents
        # come back; the reports say who is still starting.
        resumed = self.properties.resumed and self.status in (GuildStatus.RUNNING, GuildStatus.WARNING)
        if not resumed:
            await self._move(ctx, GuildStatus.PENDING_LAUNCH)
        # Urgent: the launch goes before any request that waited for us (a user must find the agents up).
        # (The engine that handles it may build the manager from its first spec: the payload says it.)
        await ctx.send({"agent_id": self.id, "resumed": resumed}, format=formats.SELF_READY,
                       topics=topic_names.agent_self_inbox(self.id), priority=Priority.URGENT, routed=False)

    # --- launch --------------------------------------------------------------------------
    @handles(formats.SELF_READY)
    async def launch_agents(self, ctx: HandlerContext) -> None:
        if ctx.payload.get("resumed"):
            self.status = await store.guild_status(self.guild_id) or self.status
        else:
            await self._move(ctx, GuildStatus.STARTING)
        self.launched = True
        launched_at_ms = self.properties.launched_at_ms or int(time.time() * 1000)
        for spec in self.guild.spec.agents:
            self.health.expect(spec.id, spec.name, AgentKind.BOT)
        await self._report(ctx)
        for spec in self.guild.spec.agents:
            await self._start(spec, AgentKind.BOT, launched_at_ms)
        running = set(await self.guild.running_agent_ids())
        for record in await store.agent_records(self.guild_id, kind=AgentKind.HUMAN):
            # One a join handled before this launch started already is up as well.
            if record.agent_id in running or await self._start(AgentSpec.model_validate(record.spec),
                                                               AgentKind.HUMAN, launched_at_ms):
                await self._proxy_up(record.agent_id)
        await self._settle(ctx)

    async def _start(self, spec, kind: str, catch_up_since_ms: int) -> bool:
        try:
            await self.guild.start_agent(spec, kind=kind, catch_up_since_ms=catch_up_since_ms)
        except Exception as exc:
            logger.exception("agent failed to start", extra={"guild_id": self.guild_id, "agent_id": spec.id})
            self.health.expect(spec.id, spec.name, kind)  # (a proxy is in the table only while not well)
            self.health.failed(spec.id, f"could not start: {type(exc).__name__}: {exc}")
            await store.agent_status_set(self.guild_id, spec.id, "error", str(exc))
            return False
        return True

    async def _proxy_up(self, agent_id: str) -> None:
        """A user proxy answers no heartbeats: started is up (and well: out of the table)."""
        self.health.forget(agent_id)
        await store.agent_status_set(self.guild_id, agent_id, "running")

    async def _proxies(self) -> list[health.AgentHealth]:
        return [health.proxy_entry(*row) for row in await store.user_proxies(self.guild_id)]

    # --- health --------------------------------------------------------------------------
    @handles(formats.HEARTBEAT)
    async def on_heartbeat(self, ctx: HandlerContext) -> None:
        if self.stopping:  # a late answer: the guild is stopped, its agents stay so
            return
        sender = ctx.message.sender.id or ""
        changed = self.health.beat(sender, ctx.message.payload)
        if changed:
            await store.agent_status_set(self.guild_id, sender, "running")
            await self._settle(ctx)

    @handles(HEALTH_TICK)
    async def health_round(self, ctx: HandlerContext) -> None:
        """Every heartbeat interval: who went silent, ask everyone again, tell the guild."""
        if self.stopping:
            return
        from django.conf import settings

        for agent_id in self.health.sweep(settings.GUILDSITE_HEARTBEAT_TIMEOUT):
            await store.agent_status_set(self.guild_id, agent_id, "unresponsive", self.health.agents[agent_id].detail)
        proxies = await self._proxies()
        running = set(await self.guild.running_agent_ids())
        for proxy in proxies:
            if proxy.status == health.OK and proxy.agent_id not in running:
                proxy.status, proxy.detail = health.UNRESPONSIVE, "its proxy is not running"
                self.health.agents[proxy.agent_id] = proxy
                await store.agent_status_set(self.guild_id, proxy.agent_id, "unresponsive", proxy.detail)
        await ctx.send({"checktime": iso_now()}, format=formats.HEALTH_CHECK_REQUEST,
                       topics=topic_names.HEARTBEAT_TOPIC, priority=Priority.HIGH, routed=False)
        await self._settle(ctx, proxies)

    async def _settle(self, ctx: HandlerContext, proxies: list[health.AgentHealth] | None = None) -> None:
        """Bring the persisted status in line with the health table and publish the report."""
        if not self.launched:
            return
        target = self.health.guild_status(self.status)
        if target != self.status:
            await self._move(ctx, target, self.health.problems())
        await self._report(ctx, await self._proxies() if proxies is None else proxies)

    async def _move(self, ctx: HandlerContext, status: str, detail: str = "") -> bool:
        if status == self.status:
            return False
        moved = await store.guild_status_set(self.guild_id, status, detail)
        if moved:
            logger.info("guild status %s -> %s", self.status, status, extra={"guild_id": self.guild_id})
            self.status = status
            await ctx.send({"guild_id": self.guild_id, "status": status, "detail": detail},
                           format=formats.GUILD_STATUS,
                           topics=[topic_names.GUILD_STATUS_TOPIC, topic_names.GUILD_EVENTS_TOPIC], routed=False)
        else:
            # Someone else (a stop) moved the guild; follow the database.
            current = await store.guild_status(self.guild_id) or self.status
            logger.warning("guild status %s -> %s refused: the database says %s", self.status, status, current,
                           extra={"guild_id": self.guild_id})
            self.status = current
        return moved

    async def _report(self, ctx: HandlerContext, proxies: list[health.AgentHealth] = ()) -> None:
        await ctx.send(self.health.report(guild_status=self.status, proxies=proxies),
                       format=formats.AGENTS_HEALTH_REPORT, topics=topic_names.GUILD_STATUS_TOPIC, routed=False)

    # --- users ---------------------------------------------------------------------------
    @handles(formats.USER_AGENT_CREATION_REQUEST)
    async def create_user_proxy(self, ctx: HandlerContext) -> None:
        user_id = str(ctx.payload.get("user_id") or "")
        user_name = str(ctx.payload.get("user_name") or user_id)
        notify = topic_names.user_system_notifications(user_id)
        if not user_id or ":" in user_id or self.stopping:
            await ctx.send({"status_code": 400, "status": "Bad Request", "error_field": "user_id",
                            "message": "a user id without ':' is required"},
                           format=formats.USER_AGENT_CREATION_RESPONSE, topics=notify, routed=False)
            return
        agent_id = user_proxy_id(user_id)
        if agent_id in await self.guild.running_agent_ids():
            if self.launched:
                await self._proxy_up(agent_id)
            await ctx.send({"user_id": user_id, "agent_id": agent_id, "status_code": 200,
                            "status": "Agent already running", "topic": topic_names.user_inbox(user_id)},
                           format=formats.USER_AGENT_CREATION_RESPONSE, topics=notify, routed=False)
            await self._report_to_user(ctx, agent_id, user_name, notify)
            return
        spec = AgentSpec(id=agent_id, name=user_name, description=f"Agent for user {user_id}",
                         class_name=USER_PROXY_CLASS, listen_to_default_topic=False,
                         properties={"user_id": user_id, "user_name": user_name})
        if self.launched:
            # What the user sent before the proxy was up waits in the inbox since this request.
            if await self._start(spec, AgentKind.HUMAN, ctx.message.timestamp):
                await self._proxy_up(agent_id)
        else:
            # Asked before the guild's agents were launched (the request came as the manager started):
            # the proxy starts with them, after them, so the user's first message finds them listening.
            await store.agent_record_ensure(self.guild_id, agent_id=agent_id, name=user_name, kind=AgentKind.HUMAN,
                                            class_name=USER_PROXY_CLASS, spec=spec.model_dump(mode="json"))
        await ctx.send({"user_id": user_id, "agent_id": agent_id, "status_code": 201,
                        "status": "Agent created successfully", "topic": topic_names.user_inbox(user_id)},
                       format=formats.USER_AGENT_CREATION_RESPONSE, topics=notify, routed=False)
        await self._report_to_user(ctx, agent_id, user_name, notify)

    async def _report_to_user(self, ctx: HandlerContext, agent_id: str, user_name: str, notify: str) -> None:
        """The joining user hears at once that its proxy is up, in a report to it alone of the guild's
        agents but the other users' proxies: a whole report per join would cost a guild of N users N
        reports of N agents. Everyone sees the new proxy in the next round's report."""
        if not self.launched:
            return  # the launch reports when it has started the proxy
        target = self.health.guild_status(self.status)
        if target != self.status:
            await self._move(ctx, target, self.health.problems())
        proxy = self.health.agents.get(agent_id) or health.AgentHealth(agent_id, user_name, AgentKind.HUMAN, health.OK)
        table = HealthTable()
        table.agents = {a: entry for a, entry in self.health.agents.items() if entry.kind != AgentKind.HUMAN}
        report = table.report(guild_status=self.status, proxies=[proxy])
        report["guild_health"] = self.health.guild_health()  # the whole guild's
        await ctx.send(report, format=formats.AGENTS_HEALTH_REPORT, topics=notify, routed=False)

    @handles(formats.PARTICIPANTS_REQUEST)
    async def list_participants(self, ctx: HandlerContext) -> None:
        proxies = [p for p in await self._proxies() if p.agent_id not in self.health.agents]
        participants = sorted(
            (
                {"id": entry.agent_id, "name": entry.name, "type": "human" if entry.kind == AgentKind.HUMAN else "bot"}
                for entry in [*self.health.agents.values(), *proxies]
            ),
            key=lambda p: (p["name"].lower(), p["id"]),
        )
        user_id = ctx.payload.get("user_id")
        topics = topic_names.user_system_notifications(user_id) if user_id else None
        await ctx.send({"participants": participants}, format=formats.PARTICIPANTS, topics=topics, routed=False)

    # --- stop ----------------------------------------------------------------------------
    @handles(formats.STOP_GUILD_REQUEST)
    async def stop_guild(self, ctx: HandlerContext) -> None:
        if self.stopping:
            return
        self.stopping = True
        user_id = ctx.payload.get("user_id") or ctx.message.sender.id
        await ctx.send({"guild_id": self.guild_id, "user_id": user_id}, format=formats.STOP_GUILD_RESPONSE,
                       topics=[topic_names.GUILD_STATUS_TOPIC, topic_names.GUILD_EVENTS_TOPIC], routed=False)
        proxies = await self._proxies()
        await self.guild.stop_all_agents()
        await store.agents_stopped(self.guild_id)
        for entry in [*self.health.agents.values(), *proxies]:
            entry.status = health.STOPPED
        await self._move(ctx, GuildStatus.STOPPED, f"stopped by {user_id}")
        await self._report(ctx, proxies)
        self.guild.schedule_shutdown()


__all__ = ["MANAGER_ID", "GuildManagerAgent", "user_proxy_id"]
