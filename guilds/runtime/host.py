"""AgentHost: one running agent — its subscriptions, its queue, and how a message reaches a handler.

Engine-neutral: the in-process engine keeps hosts on the runtime loop; other engines
create them where the agent runs. Per agent, messages are handled one at a time, by
priority then id (the tracking client's order), never twice.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from typing import TYPE_CHECKING, Any

from guilds.models import AgentKind, RunStatus
from guilds.runtime import cancellation, dead_letters, formats, health, runs, store
from guilds.runtime.context import HandlerContext, SyncHandlerContext
from guilds.runtime.registry import canonical_class_name, resolve_agent_class
from messaging import topics as topic_names
from messaging.clients import MessageTrackingClient
from messaging.ids import Priority, encode_id
from messaging.message import AgentTag, Message, RoutingSlip

if TYPE_CHECKING:
    from guilds.runtime.agent import Agent
    from guilds.runtime.guild import GuildControl
    from guilds.spec import AgentSpec
    from messaging.delivery import Woken

logger = logging.getLogger(__name__)

MANAGER_ID = topic_names.GUILD_MANAGER_ID
# The engine's bookkeeping of an agent (GuildAgent.runtime), apart from the state its handlers see.
CURSORS = "catch_up_cursors"
MEMORY = "memory"
# Ordinary handlers never see these topics: they carry the guild's own bookkeeping.
ESSENTIAL_TOPICS = frozenset({topic_names.GUILD_STATUS_TOPIC, topic_names.HEARTBEAT_TOPIC, topic_names.STATE_TOPIC})


def since_id(timestamp_ms: int) -> int:
    """An id no message has, just before `timestamp_ms`: 'since' queries fall back to time for it,
    and so include messages stamped in that same millisecond."""
    return encode_id(timestamp_ms - 1, 0, 0, 0)


class LiveDelivery:
    """In-process delivery: a tracking client on this process's bus (one message at a time, in order)."""

    def __init__(self) -> None:
        self.client: MessageTrackingClient | None = None

    async def attach(self, host: AgentHost, topics: list[str]) -> None:
        self.client = MessageTrackingClient(id=host.agent_id, name=host.spec.name,
                                            handler=functools.partial(self._handle, host))
        await host.guild.bus.register_client(self.client)
        for topic in topics:
            await host.guild.bus.subscribe(topic, self.client)

    async def enqueue(self, host: AgentHost, messages: list[Message]) -> None:
        for message in messages:
            self.client.notify_new_message(message)

    async def detach(self, host: AgentHost) -> None:
        if self.client is not None:
            await host.guild.bus.unregister_client(self.client)
            await self.client.close()

    async def unsubscribe(self, host: AgentHost, topic: str) -> None:
        await host.guild.bus.unsubscribe(topic, self.client)

    async def state_saving(self, host: AgentHost) -> None:
        return None  # the one copy of the agent is this one

    def state_saved(self, host: AgentHost, token: object) -> None:
        pass

    async def idle(self) -> None:
        await self.client.idle()

    @property
    def waiting(self) -> int:
        """Messages queued for the agent, not counting the one it is handling."""
        return self.client.waiting if self.client is not None else 0

    @property
    def busy(self) -> bool:
        """Whether a message waits for the agent or is being handled."""
        return self.client is not None and self.client.busy

    @staticmethod
    async def _handle(host: AgentHost, message: Message) -> None:
        """Failures inside a handler are the agent's (it answers with an error); one outside a handler is
        not retried here (nothing would redeliver it): the message goes to the dead letters at once."""
        try:
            await host.handle(message)
        except Exception as exc:
            logger.exception("handling failed outside the handlers",
                             extra={"guild_id": host.guild.guild_id, "agent_id": host.agent_id, "message_id": message.id})
            await dead_letters.dead_letter(host.guild, agent_id=host.agent_id, message_id=message.id,
                                           body=dead_letters.body_of(message), reason=f"{type(exc).__name__}: {exc}",
                                           attempts=1)


class AgentHost:
    def __init__(self, *, guild: GuildControl, spec: AgentSpec, kind: str, state: dict[str, Any] | None = None,
                 runtime: dict[str, Any] | None = None, delivery: Any = None) -> None:
        self.guild = guild
        self.spec = spec
        self.kind = kind
        self.agent_id = spec.id
        self.class_name = canonical_class_name(spec.class_name)
        self.tag = AgentTag(id=spec.id, name=spec.name)
        self.state: dict[str, Any] = dict(state or {})
        self.runtime: dict[str, Any] = dict(runtime or {})
        # Set by a drain around each message: the agents its sends wake go there (it drains them next).
        self.collect_woken: Woken | None = None
        self.agent: Agent | None = None
        # How messages reach the agent: LiveDelivery here, or a durable inbox (guilds.engines.celery).
        self.delivery = delivery if delivery is not None else LiveDelivery()
        self.started = False
        self._ready = asyncio.Event()  # set once on_start ran: nothing is handled before

    # --- life cycle ----------------------------------------------------------------------
    def topics(self) -> list[str]:
        wanted = list(self.spec.additional_topics)
        if self.spec.listen_to_default_topic:
            wanted.append(topic_names.DEFAULT_TOPIC)
        wanted += [topic_names.agent_inbox(self.agent_id), topic_names.agent_self_inbox(self.agent_id)]
        if self.agent is None or self.agent.answers_health_checks:
            wanted.append(topic_names.HEARTBEAT_TOPIC)
        if self.agent is not None:
            wanted += self.agent.extra_topics()
        return list(dict.fromkeys(wanted))

    def prepare(self) -> Agent:
        """The agent object, made from the spec (no subscriptions, no on_start)."""
        agent_class = resolve_agent_class(self.spec.class_name)
        properties = agent_class.validate_properties(self.spec.properties)
        self.agent = agent_class(agent_id=self.agent_id, name=self.spec.name, guild_id=self.guild.guild_id,
                                 properties=properties, spec=self.spec)
        self.agent.host = self
        return self.agent

    async def start(self, *, catch_up_since_ms: int | None = None) -> None:
        self.prepare()
        await self.delivery.attach(self, self.topics())
        await self.agent.on_start(HandlerContext(self, None, "on_start"))
        if catch_up_since_ms is not None:
            await self._catch_up(catch_up_since_ms)
        self.started = True
        self._ready.set()
        if self.agent.answers_health_checks:
            await self.heartbeat(None)

    async def _catch_up(self, since_ms: int) -> None:
        """Queue what arrived on the agent's catch-up topics before it subscribed (it waited for us):
        after the kept cursor if there is one, else since `since_ms`."""
        cursors = self.runtime.get(CURSORS, {})
        for topic in self.agent.catch_up_topics():
            since = int(cursors[topic]) if topic in cursors else since_id(since_ms)
            await self.delivery.enqueue(self, await self.guild.bus.get_messages_for_topic_since(topic, since))

    async def stop(self) -> None:
        await self.delivery.detach(self)
        if self.agent is not None:
            try:
                await self.agent.on_stop()
            except Exception:
                logger.exception("agent on_stop failed", extra={"guild_id": self.guild.guild_id, "agent_id": self.agent_id})
        self.started = False

    async def idle(self) -> None:
        await self.delivery.idle()

    # --- messages ------------------------------------------------------------------------
    def default_slip(self) -> RoutingSlip | None:
        """Messages that start a flow (from proxies and system agents) carry the guild's routes."""
        if self.kind in ("human", "system"):
            return self.guild.spec.routes
        return None

    async def publish(self, message: Message) -> Message:
        return await self.guild.bus.publish(message, collect_woken=self.collect_woken)

    async def heartbeat(self, request: Message | None) -> None:
        if self.agent_id == MANAGER_ID:
            return
        status, detail = await self.agent.health()
        now_ms = time.time() * 1000
        checktime_ms = request.timestamp if request is not None else now_ms
        payload = health.heartbeat_payload(
            checktime=health.iso_from_ms(int(checktime_ms)),
            observed_latency_ms=max(0.0, now_ms - checktime_ms),
            qos_latency=self.spec.qos.get("latency"),
            status=status,
            detail=detail,
        )
        ctx = HandlerContext(self, request, "heartbeat")
        # The status topic too, so system sockets see heartbeats as they happen.
        await ctx.send(payload, format=formats.HEARTBEAT,
                       topics=[topic_names.agent_inbox(MANAGER_ID), topic_names.GUILD_STATUS_TOPIC],
                       priority=Priority.HIGH, routed=False)

    async def handle(self, message: Message) -> None:
        """One message, start to end: heartbeat requests answered here, the rest to the agent's handlers."""
        if not self._ready.is_set():
            await self._ready.wait()
        message_format = formats.canonical_format(message.format)
        if message_format == formats.HEALTH_CHECK_REQUEST:
            if self.agent.answers_health_checks:
                await self.heartbeat(message)
            else:  # subscribed by an earlier release, when user proxies answered: it stops listening
                await self.delivery.unsubscribe(self, topic_names.HEARTBEAT_TOPIC)
            return
        if self.spec.act_only_when_tagged and not message.is_tagged(self.tag):
            return
        essential = message.topic_published_to in ESSENTIAL_TOPICS
        handlers = type(self.agent).handlers_for(message_format, essential_topic=essential)
        if handlers and message.trigger and self.kind == AgentKind.BOT and not self.agent.records_runs:
            await self._handle_as_run(message, handlers)
        else:
            for method_name in handlers:
                await self._invoke(method_name, message)
            if message.trigger and self.kind == AgentKind.BOT:  # a run queued for it must not stay queued
                await runs.run_abandon_queued(
                    guild_id=self.guild.guild_id, agent_id=self.agent_id, message_id=message.id,
                    error=f"not handled: {self.agent_id} has no handler for '{message_format}'" if not handlers
                    else "not handled: the agent did not start a run for this message")
        # Past a message it handled (one it has no handler for, such as a runUpdate on the system topic,
        # would only cost a saved cursor; a catch-up passes it by again).
        if handlers and self.agent.keeps_catch_up_cursor and message.topic_published_to in self.agent.catch_up_topics():
            await self.runtime_update({CURSORS: {message.topic_published_to: str(message.id)}})

    async def _handle_as_run(self, message: Message, handlers: list[str]) -> None:
        """A message a trigger sent (the REST endpoint, a schedule, a webhook): its handling is a run."""
        run = await runs.run_start(guild_id=self.guild.guild_id, agent_id=self.agent_id, thread_id=None,
                                   message_id=message.id, requester=runs.requester_of(message),
                                   trigger=message.trigger)
        ctx = HandlerContext(self, message, "run")
        if await cancellation.cancel_requested(run.pk):  # cancelled while it waited: not handled at all
            await runs.run_finish(run.pk, status=RunStatus.CANCELLED, started_at=run.started_at,
                                  error="cancelled on request")
            await runs.publish_update(ctx, run, RunStatus.CANCELLED)
            return
        await runs.publish_update(ctx, run, RunStatus.RUNNING)
        try:
            errors = [error for method_name in handlers if (error := await self._invoke(method_name, message))]
        except asyncio.CancelledError:  # the agent is stopping: the run must not stay "running"
            await asyncio.shield(runs.run_finish(run.pk, status=RunStatus.FAILED, started_at=run.started_at,
                                                 error=runs.INTERRUPTED))
            raise
        status = RunStatus.FAILED if errors else RunStatus.SUCCEEDED
        await runs.run_finish(run.pk, status=status, started_at=run.started_at, error="; ".join(errors))
        await runs.publish_update(ctx, run, status, error="; ".join(errors))

    async def _invoke(self, method_name: str, message: Message) -> str | None:
        """Run one handler; what went wrong, if it raised (the sender gets an ErrorMessage saying so)."""
        ctx = HandlerContext(self, message, method_name)
        method = getattr(self.agent, method_name)
        try:
            if inspect.iscoroutinefunction(method):
                await method(ctx)
            else:
                # A plain function may block: it runs in a thread so other agents go on.
                await asyncio.to_thread(method, SyncHandlerContext(ctx, asyncio.get_running_loop()))
        except Exception as exc:
            logger.exception(
                "handler raised",
                extra={"guild_id": self.guild.guild_id, "agent_id": self.agent_id, "message_id": message.id,
                       "handler": method_name},
            )
            await ctx.send_error("UNHANDLED_EXCEPTION", f"{type(exc).__name__}: {exc}")
            return f"{type(exc).__name__}: {exc}"
        return None

    # --- state ---------------------------------------------------------------------------
    async def state_update(self, patch: dict[str, Any]) -> dict[str, Any]:
        self.state = store.merge_patch(self.state, patch)
        token = await self.delivery.state_saving(self)  # other copies of the agent go out of date first
        await store.agent_state_save(self.guild.guild_id, self.agent_id, self.state)
        self.delivery.state_saved(self, token)
        return self.state

    async def runtime_update(self, patch: dict[str, Any], *, whole: bool = False) -> None:
        """The engine's bookkeeping of the agent: saved like its state, kept apart from it. With `whole`, each
        of the patch's keys takes its value as given (a merge patch would drop its nulls and keep what it no
        longer holds)."""
        self.runtime = {**self.runtime, **patch} if whole else store.merge_patch(self.runtime, patch)
        token = await self.delivery.state_saving(self)
        await store.agent_runtime_save(self.guild.guild_id, self.agent_id, self.runtime)
        self.delivery.state_saved(self, token)

    async def guild_state_get(self) -> dict[str, Any]:
        return await store.guild_state_load(self.guild.guild_id)

    async def guild_state_update(self, patch: dict[str, Any]) -> dict[str, Any]:
        return await store.guild_state_merge(self.guild.guild_id, patch)
