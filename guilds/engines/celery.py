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
import contextvars
import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis as sync_redis
from django.conf import settings
from redis.exceptions import RedisError

from guilds.engines.base import ExecutionEngine
from guilds.engines.names import CELERY
from guilds.models import GuildStatus
from guilds.runtime import loop as runtime_loop
from guilds.runtime import store
from guilds.runtime.guild import guild_bus, guild_bus_forget
from guilds.runtime.host import MANAGER_ID, AgentHost
from guilds.runtime.manager import HEALTH_TICK, manager_start
from guilds.spec import USER_PROXY_ID_PREFIX, AgentSpec, GuildSpec
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
CHAIN_LIMIT = 32  # agents one drain task may take on inline; more go to the queue



class _Woken(list):
    """Inside a drain task: the agents its work woke, for the same task to drain next. Closed
    when the task is done (a task spawned meanwhile keeps the context, not the duty)."""

    closed = False


_woken_here: contextvars.ContextVar[_Woken | None] = contextvars.ContextVar("woken_here", default=None)


def _taking_woken() -> _Woken | None:
    woken = _woken_here.get()
    return woken if woken is not None and not woken.closed else None


def _agents_key(guild_id: str) -> str:
    return f"gs:celery:agents:{guild_id}"


def _topics_key(guild_id: str, agent_id: str) -> str:
    return f"gs:celery:topics:{guild_id}:{agent_id}"


def drain_task_template() -> tuple[str, str]:
    """(list key, message) of a drain_agent task as Celery's Redis transport carries it, made by
    Celery's own message builder, with markers where the store script writes the task id, the
    guild and the agent (tests.runtime.test_celery_engine compares it with what apply_async sends)."""
    from guilds.tasks import drain_agent

    return _drain_task_template(drain_agent.app.conf.task_default_queue)


def _logged(send: Any) -> Any:
    def run() -> None:
        try:
            send()
        except Exception as exc:  # the broker is away: the wake flag lapses and beat's sweep wakes the agent
            logger.warning("could not enqueue a drain task: %s", exc)

    return run


@cache
def _drain_task_template(queue: str) -> tuple[str, str]:
    from guilds.tasks import drain_agent

    app = drain_agent.app
    headers, properties, body, _ = app.amqp.as_task_v2(
        durable.TASK_ID_MARK, drain_agent.name, args=(durable.NAMESPACE_MARK, durable.AGENT_MARK), kwargs={},
        ignore_result=True, origin="guildsite-store-script")
    message = {
        "body": json.dumps(body),  # no body_encoding: the transport takes it as it is
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {**properties, "delivery_mode": 2, "priority": 0, "delivery_tag": durable.TASK_ID_MARK,
                       "delivery_info": {"exchange": "", "routing_key": queue}},
    }
    return queue, json.dumps(message)


@cache
def _redis() -> sync_redis.Redis:
    return sync_redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=2)


class DurableDelivery:
    """Delivery for a Celery agent: a durable inbox instead of a live client."""

    def __init__(self, inbox: durable.Inbox) -> None:
        self.inbox = inbox
        self.version = -1  # of the agent's state, as this copy has it (see durable.Inbox.bump_version)

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

    def __init__(self, *, drains_user_proxies: bool | None = None) -> None:
        from guildsite.startup import is_server_process

        self._guilds: dict[str, CeleryGuild] = {}
        self._hosts: dict[tuple[str, str], AgentHost] = {}
        # The web server drains its users' proxies itself: what a user sends is routed into the
        # guild without a broker round trip (a proxy only routes; the lease keeps it one at a time).
        self.drains_user_proxies = is_server_process() if drains_user_proxies is None else drains_user_proxies
        self._local_drains: set[asyncio.Task[None]] = set()
        durable.set_wake_handler(self._wake, self._task_template)

    # --- the server side -----------------------------------------------------------------
    def _wake(self, guild_id: str, agent_ids: list[str]) -> None:
        woken_here = _taking_woken()
        for agent_id in agent_ids:
            if woken_here is not None and len(woken_here) < CHAIN_LIMIT:
                woken_here.append((guild_id, agent_id))  # a drain task in this process takes it next
            elif self._drains_here(agent_id):
                self._drain_here(guild_id, agent_id)
            else:
                self._enqueue(guild_id, agent_id)

    def _drains_here(self, agent_id: str) -> bool:
        return self.drains_user_proxies and agent_id.startswith(USER_PROXY_ID_PREFIX)

    def _drain_here(self, guild_id: str, agent_id: str, delay: float = 0) -> None:
        loop = runtime_loop.runtime_loop()

        async def drain() -> None:
            if delay:
                await asyncio.sleep(delay)
            try:
                outcome = await self.drain(guild_id, agent_id, time.monotonic() + DRAIN_SLICE_SECONDS)
            except Exception:
                logger.exception("draining user proxy %s failed; a worker takes it over", agent_id,
                                 extra={"guild_id": guild_id})
                self._enqueue(guild_id, agent_id, countdown=1)
                return
            if outcome.retry_in is not None:  # held elsewhere: its holder handles what waits; this is insurance
                self._drain_here(guild_id, agent_id, outcome.retry_in)
            elif outcome.more:
                self._drain_here(guild_id, agent_id)

        def start() -> None:
            task = loop.create_task(drain(), context=contextvars.Context())
            self._local_drains.add(task)
            task.add_done_callback(self._local_drains.discard)

        if runtime_loop.in_loop(loop):
            start()
        else:
            loop.call_soon_threadsafe(start)

    def _task_template(self, backend: RedisMessagingBackend) -> durable.TaskEnqueue | None:
        """Let the store script enqueue drains itself (messaging.durable.TaskEnqueue), unless a
        drain task in this process takes the woken agents on (see drain_task) or the broker is
        another Redis database; user proxies come back to `_wake` where this process drains them."""
        if _taking_woken() is not None or not backend.same_database(settings.CELERY_BROKER_URL):
            return None
        queue, template = drain_task_template()
        return durable.TaskEnqueue(queue, template, USER_PROXY_ID_PREFIX if self.drains_user_proxies else "")

    def _enqueue(self, guild_id: str, agent_id: str, countdown: float | None = None) -> None:
        from guilds.tasks import drain_agent

        logger.debug("waking agent %s of guild %s", agent_id, guild_id)
        send = functools.partial(drain_agent.apply_async, (guild_id, agent_id), countdown=countdown)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            send()
            return
        # Celery's client blocks (and retries while Redis is away): never on an event loop, which
        # under daphne is also the sockets'.
        loop.run_in_executor(None, _logged(send))

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
        await asyncio.to_thread(_redis().sadd, GUILDS_KEY, guild_id)
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
        await asyncio.to_thread(_redis().srem, GUILDS_KEY, guild_id)
        self._guilds.pop(guild_id, None)
        for key in [k for k in self._hosts if k[0] == guild_id]:
            del self._hosts[key]
        guild_bus_forget(guild_id)

    async def shutdown(self) -> None:
        self._guilds.clear()
        self._hosts.clear()

    # --- the worker side -----------------------------------------------------------------
    async def drain_task(self, guild_id: str, agent_id: str, *, redelivered: bool = False) -> DrainOutcome:
        """A drain task's work: the agent's inbox and, in the same time slice, every agent that
        this work woke (a reply's receiver, say), so a conversation does not pay a broker round
        trip per step. The drains run side by side (each under its own lease), so a slow agent
        does not hold up the others; what the slice leaves over goes back to the queue."""
        if redelivered:  # a worker died holding this task: what it drained inline needs a drain too
            await self.sweep(guild_id, force=True)
        deadline = time.monotonic() + DRAIN_SLICE_SECONDS
        woken = _Woken()
        chain_token = _woken_here.set(woken)  # the drains started below inherit it
        head = asyncio.ensure_future(self.drain(guild_id, agent_id, deadline))
        running: dict[asyncio.Future[DrainOutcome], tuple[str, str]] = {head: (guild_id, agent_id)}
        started = 0
        outcome = DrainOutcome()
        try:
            while running:
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    drained_guild, drained_agent = running.pop(finished)
                    if finished is head:
                        outcome = finished.result()  # its errors are the task's (tasks.drain_agent waits for Redis)
                        continue
                    try:
                        step = finished.result()
                    except Exception:
                        logger.exception("draining agent %s failed; the queue takes it over", drained_agent,
                                         extra={"guild_id": drained_guild})
                        self._enqueue(drained_guild, drained_agent, countdown=1)
                        continue
                    outcome.handled += step.handled
                    if step.retry_in is not None or step.more:
                        self._enqueue(drained_guild, drained_agent, countdown=step.retry_in)
                while started < len(woken) and time.monotonic() < deadline:
                    running[asyncio.ensure_future(self.drain(*woken[started], deadline))] = woken[started]
                    started += 1
        finally:
            woken.closed = True
            _woken_here.reset(chain_token)
            for future in running:  # the head failed: the others finish on their own
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            for left_guild, left_agent in woken[started:]:  # their wake flags are set: someone must drain them
                self._enqueue(left_guild, left_agent)
        return outcome

    async def drain(self, guild_id: str, agent_id: str, deadline: float) -> DrainOutcome:
        """Handle what waits in one agent's inbox (see the module docstring). Each message is
        removed as soon as its handler finished, so a crash re-runs at most that one."""
        outcome = DrainOutcome()
        guild = await self.guild(guild_id)
        if guild is None:
            logger.warning("drain for an unknown guild %s (agent %s): nothing to do", guild_id, agent_id)
            return outcome
        inbox = await guild.inbox(agent_id)
        token = uuid.uuid4().hex
        taken, lease_left_ms, version, pending = await inbox.begin(token, LEASE_MS, BATCH)
        if not taken:
            outcome.retry_in = max(0.05, lease_left_ms / 1000)
            return outcome
        renewer = asyncio.ensure_future(self._keep_lease(inbox, token))
        released = False
        try:
            host = await self._host(guild, agent_id, version)
            if host is None:
                dropped = 0
                while pending is not None:  # nobody will ever handle these
                    dropped += len(pending)
                    pending = await inbox.step(token, pending, BATCH)
                logger.warning("agent %s of guild %s is not (or no longer) running: %d waiting message(s) dropped",
                               agent_id, guild_id, dropped)
                released = True
                return outcome
            while True:
                if not pending:
                    pending = await inbox.step(token, [], BATCH)
                    if pending is None:
                        released = True  # the step ended the drain
                        return outcome
                message = pending.pop(0)
                await host.handle(message)
                await self._remember(host)
                outcome.handled += 1
                if time.monotonic() > deadline:
                    await inbox.step(token, [message], 0)
                    outcome.more = True
                    return outcome
                if pending:
                    await inbox.step(token, [message], 0)
                else:  # the last of the batch: removed and the next batch taken in one step
                    pending = await inbox.step(token, [message], BATCH)
                    if pending is None:
                        released = True
                        return outcome
        except durable.LeaseLost:
            # Our lease lapsed (Redis or this process stalled) and another drain has the agent now:
            # it handles what is left, including the message in hand (same derived ids, no doubles).
            logger.warning("drain of agent %s lost its lease; another drain goes on", agent_id,
                           extra={"guild_id": guild_id})
            self._hosts.pop((guild_id, agent_id), None)
            released = True
            return outcome
        except BaseException:
            self._hosts.pop((guild_id, agent_id), None)  # its state may be half-updated: reload next time
            raise
        finally:
            renewer.cancel()
            if not released:
                await inbox.release_lease(token)

    async def _keep_lease(self, inbox: durable.Inbox, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            try:
                await inbox.renew_lease(token, LEASE_MS)
            except (RedisError, OSError) as exc:  # Redis away for a moment: try again next round
                logger.warning("could not renew the lease of agent %s: %s", inbox.agent_id, exc)

    async def _host(self, guild: CeleryGuild, agent_id: str, version: int) -> AgentHost | None:
        """The agent, ready to handle: kept between drains while its state `version` is the one this
        process knows, else rebuilt from its record (state as stored now, in-memory fields restored)."""
        key = (guild.guild_id, agent_id)
        host = self._hosts.get(key)
        if host is not None and host.delivery.version == version:
            return host
        record = await store.agent_record(guild.guild_id, agent_id)
        if record is None or record.status == "stopped":
            self._hosts.pop(key, None)
            return None
        if host is None:
            host = await guild.host(AgentSpec.model_validate(record.spec), record.kind, record.state)
            host.prepare()
            host.started = True
            host._ready.set()  # its on_start ran when it was started, wherever that was
            self._hosts[key] = host
        host.state = dict(record.state or {})
        host.agent.import_memory(host.state.get(MEMORY))
        host.delivery.version = version
        return host

    async def _remember(self, host: AgentHost) -> None:
        memory = host.agent.export_memory()
        if memory is not None and memory != host.state.get(MEMORY):
            await host.state_update({MEMORY: memory})

    async def sweep(self, guild_id: str, *, force: bool = False) -> None:
        """Wake every agent of the guild whose messages wait with no drain due (`force`: even if
        one is said to be due; a spare drain finds the lease taken or the inbox empty)."""
        guild = await self.guild(guild_id)
        if guild is None:
            return
        for agent_id in await guild.running_agent_ids():
            if await (await guild.inbox(agent_id)).wake_if_waiting(force=force):
                self._enqueue(guild_id, agent_id)

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
                await self.sweep(guild_id)
                await guild.bus.publish(Message.create(
                    sender=manager, topics=topic_names.agent_self_inbox(MANAGER_ID), format=HEALTH_TICK,
                    payload={"at_ms": int(time.time() * 1000)}, priority=Priority.HIGH))
            except Exception:
                logger.exception("health tick failed", extra={"guild_id": guild_id})
        return len(guild_ids)


def engine() -> CeleryEngine:
    from guilds.engines import engine_named

    return engine_named(CELERY)
