"""Draining: handling what waits in agents' inboxes, in Celery workers (and, for user proxies, in the
web server), under each agent's lease.

A drain takes the lease (per agent one message at a time, in order, whichever process), handles every
waiting message and removes each only once it was handled, so a process killed mid-message leaves it
for the next drain; the re-run derives the same outgoing ids and storing is idempotent per id, so
nothing is doubled. Every handling begun counts an attempt of its message; a failure outside the
handler (the message cannot be decoded, the agent cannot be loaded, the process died) is retried with
back-off, and after GUILDSITE_DELIVERY_MAX_ATTEMPTS the message goes to the guild's dead letters and the
agent goes on with the next. A drain whose lease is lost stops before handling anything more: another
drain that holds the agent now goes on, and a lease that merely lapsed has the agent drained again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import Error as DatabaseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guilds.engines.celery.agents import CeleryGuild
from guilds.engines.celery.wire import DRAIN_SLICE_SECONDS, enqueue
from guilds.runtime import dead_letters, formats, store
from guilds.runtime.host import MEMORY, AgentHost
from guilds.spec import AgentSpec
from messaging.delivery import Batch, Inbox, LeaseLost, Woken
from messaging.errors import BackendUnavailable, InvalidMessage
from messaging.message import Message

logger = logging.getLogger(__name__)

# Failures of what a drain stands on rather than of the message.
_OUTAGES = (BackendUnavailable, RedisError, OSError, DatabaseError)
LEASE_MS = 3000  # renewed every second while draining; a dead drainer's lease lapses this fast
BATCH = 64
# While Redis is away (a restart) a drain waits for it this long rather than handing itself to the queue (that
# same Redis). Given up, the inbox still holds the messages and beat's sweep wakes the agent once Redis is back.
REDIS_WAIT_SECONDS = 60
_REDIS_AWAY = (BackendUnavailable, RedisConnectionError, RedisTimeoutError, ConnectionError)
CHAIN_LIMIT = 32  # agents one drain task drains inline at once; more are handed off (the lane, else the queue)


def backoff_seconds(attempts: int) -> float:
    """Before the next try of a message whose handling failed outside the handler."""
    return min(30.0, 0.25 * 2 ** max(0, attempts - 1))


@dataclass
class DrainOutcome:
    handled: int = 0
    retry_in: float | None = None  # drain again after this many seconds (lease held elsewhere, or a back-off)
    more: bool = False  # the time slice ran out with messages waiting


class _Failed(Exception):
    """Handling a message failed outside its handler (the reason is the message)."""


class _Woken(list):
    """The agents a drain task's work woke (DurableDelivery.woken extends it), with a signal when it grows. Once
    the task is over (`closed`), drains it left running may still wake agents: those are handed off at once."""

    def __init__(self, hand_off: Callable[[str, str], None]) -> None:
        super().__init__()
        self.grew = asyncio.Event()
        self.closed = False
        self.hand_off = hand_off

    def extend(self, agents) -> None:
        if self.closed:
            for guild_id, agent_id in agents:
                self.hand_off(guild_id, agent_id)
            return
        super().extend(agents)
        self.grew.set()

    def append(self, agent) -> None:
        self.extend([agent])


class Drainer:
    def __init__(self, guild_of: Callable[[str], Awaitable[CeleryGuild | None]],
                 sweep: Callable[[str], Awaitable[None]], hand_off: Callable[[str, str], None] = enqueue) -> None:
        self.guild_of = guild_of  # the engine's guilds in this process
        self.sweep = sweep  # wakes every agent of a guild with messages waiting (force: even if one is due)
        self.hand_off = hand_off  # another drain for an agent, now, elsewhere (the engine's drain lane, or the queue)
        self._hosts: dict[tuple[str, str], AgentHost] = {}

    def loaded(self, guild_id: str, agent_id: str) -> AgentHost | None:
        """The agent as the last drain in this process left it, if one did (not checked against its record)."""
        return self._hosts.get((guild_id, agent_id))

    def forget(self, guild_id: str) -> None:
        for key in [k for k in self._hosts if k[0] == guild_id]:
            del self._hosts[key]

    async def drain_task_waiting_for_redis(self, guild_id: str, agent_id: str, *,
                                           redelivered: bool = False) -> DrainOutcome:
        """drain_task, started again while Redis is away (up to REDIS_WAIT_SECONDS): a drain's lease, inbox and
        replies are all there, so nothing else could take the work on meanwhile."""
        waited, pause = 0.0, 0.25
        while True:
            try:
                return await self.drain_task(guild_id, agent_id, redelivered=redelivered)
            except _REDIS_AWAY as exc:
                if waited >= REDIS_WAIT_SECONDS:
                    raise
                logger.warning("drain of agent %s waits for Redis: %s", agent_id, exc, extra={"guild_id": guild_id})
                await asyncio.sleep(pause)
                waited, pause = waited + pause, min(2.0, pause * 2)

    async def drain_task(self, guild_id: str, agent_id: str, *, redelivered: bool = False) -> DrainOutcome:
        """A drain task's work: the agent's inbox and, in the same time slice, every agent that this work
        woke (a reply's receiver, say), so a conversation does not pay a broker round trip per step. The
        drains run side by side (each under its own lease), so a slow agent does not hold up the others;
        what the slice leaves over goes back to the queue."""
        if redelivered:  # a worker died holding this task: what it drained inline needs a drain too
            await self.sweep(guild_id)
        deadline = time.monotonic() + DRAIN_SLICE_SECONDS
        woken = _Woken(self.hand_off)
        head = asyncio.ensure_future(self.drain(guild_id, agent_id, deadline, woken))
        running: dict[asyncio.Future[DrainOutcome], tuple[str, str]] = {head: (guild_id, agent_id)}
        started = 0
        outcome = DrainOutcome()
        try:
            while running:
                # Also back as soon as an agent is woken: one drain busy in a long handler must not hold up the
                # agents its neighbours woke (a guild manager's heartbeats, say) until it ends.
                woken.grew.clear()
                grew = asyncio.ensure_future(woken.grew.wait())
                try:
                    done, _ = await asyncio.wait({*running, grew}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    grew.cancel()
                for finished in done - {grew}:
                    drained_guild, drained_agent = running.pop(finished)
                    if finished is head:
                        outcome = finished.result()  # its errors are the task's (which waits for Redis)
                        continue
                    try:
                        step = finished.result()
                    except Exception:
                        logger.exception("draining agent %s failed; the queue takes it over", drained_agent,
                                         extra={"guild_id": drained_guild})
                        enqueue(drained_guild, drained_agent, countdown=1)
                        continue
                    outcome.handled += step.handled
                    if step.retry_in is not None:
                        enqueue(drained_guild, drained_agent, countdown=step.retry_in)
                    elif step.more:
                        self.hand_off(drained_guild, drained_agent)
                while started < len(woken):  # inline while the slice and the chain allow, else handed off now
                    if len(running) <= CHAIN_LIMIT and time.monotonic() < deadline:
                        running[asyncio.ensure_future(self.drain(*woken[started], deadline, woken))] = woken[started]
                    else:
                        self.hand_off(*woken[started])
                    started += 1
        finally:
            for future in running:  # the head failed: the others finish on their own
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            for left_guild, left_agent in woken[started:]:  # their wake flags are set: someone must drain them
                self.hand_off(left_guild, left_agent)
            woken.closed = True
        return outcome

    async def drain(self, guild_id: str, agent_id: str, deadline: float, woken: Woken | None = None) -> DrainOutcome:
        """Handle what waits in one agent's inbox; the agents its sends wake go to `woken` (drained next by
        the caller) when given, else to the engine's waker."""
        outcome = DrainOutcome()
        guild = await self.guild_of(guild_id)
        if guild is None:
            logger.warning("drain for an unknown guild %s (agent %s): nothing to do", guild_id, agent_id)
            return outcome
        inbox = await guild.inbox(agent_id)
        token = uuid.uuid4().hex
        taken, lease_left_ms, version, batch = await inbox.begin(token, LEASE_MS, BATCH)
        if not taken:
            outcome.retry_in = max(0.05, lease_left_ms / 1000)
            return outcome
        lost = asyncio.Event()
        renewer = asyncio.ensure_future(self._keep_lease(inbox, token, lost))
        released = False
        host: AgentHost | None = None
        try:
            pending: Batch | None = batch
            while True:
                if pending is None:
                    released = True  # the last step ended the drain
                    return outcome
                if not pending.entries:
                    pending = await inbox.step(token, [], BATCH)
                    continue
                if lost.is_set():
                    raise LeaseLost(agent_id)
                message_id, body = pending.entries[0]
                if pending.attempts > settings.GUILDSITE_DELIVERY_MAX_ATTEMPTS:
                    await self._dead_letter(guild, inbox, message_id, body, pending.attempts)
                else:
                    message: Message | None = None
                    try:
                        message = _decoded(body)
                        if host is None:
                            host = await self._host(guild, agent_id, version)
                        if host is None:  # stopped: nobody will ever handle what waits
                            await self._drop_all(inbox, token, pending)
                            released = True
                            return outcome
                        await self._handle(host, message, woken)
                    except _OUTAGES:
                        await _uncounted(inbox, message_id)
                        raise
                    except _Failed as failure:
                        if message is None or not _periodic(message):
                            await inbox.record_failure(message_id, str(failure))
                            logger.warning("message %s for agent %s failed (attempt %d): %s", message_id, agent_id,
                                           pending.attempts, failure, extra={"guild_id": guild_id})
                            outcome.retry_in = backoff_seconds(pending.attempts)
                            return outcome
                        # A health check is asked again every round: dropped, not retried nor filed
                        # (the silent agent shows in the guild's health instead).
                        logger.info("health check for agent %s dropped: %s", agent_id, failure,
                                    extra={"guild_id": guild_id})
                    else:
                        outcome.handled += 1
                pending.entries.pop(0)
                if time.monotonic() > deadline:
                    await inbox.step(token, [message_id], 0)
                    outcome.more = True
                    return outcome
                if pending.entries:
                    pending.attempts = (await inbox.step(token, [message_id], 0, pending.entries[0][0])).attempts
                else:  # the last of the batch: removed and the next batch taken in one step
                    pending = await inbox.step(token, [message_id], BATCH)
        except LeaseLost:
            # Our lease lapsed (Redis or this process stalled). Another drain that took the agent over handles
            # what is left, including the message in hand (same derived ids, no doubles). A lease that merely
            # lapsed has no holder, and the wake flag, still set, keeps new messages from waking anyone until it
            # lapses too: then the agent is drained again after the message's back-off.
            self._hosts.pop((guild_id, agent_id), None)
            released = True
            held = await inbox.lease_held()
            logger.warning("drain of agent %s lost its lease; %s", agent_id,
                           "another drain goes on" if held else "nobody holds it: drained again",
                           extra={"guild_id": guild_id})
            if not held:
                outcome.retry_in = backoff_seconds(pending.attempts if pending is not None else 1)
            return outcome
        except BaseException:
            self._hosts.pop((guild_id, agent_id), None)  # its state may be half-updated: reload next time
            raise
        finally:
            renewer.cancel()
            if not released:
                await inbox.release_lease(token)

    async def _handle(self, host: AgentHost, message: Message, woken: Woken | None) -> None:
        host.collect_woken = woken
        try:
            await host.handle(message)
            await self._remember(host)
        except (LeaseLost, asyncio.CancelledError):
            raise
        except _OUTAGES:
            raise  # not the message's fault: the task waits for Redis, or the queue takes it over
        except Exception as exc:
            self._hosts.pop((host.guild.guild_id, host.agent_id), None)
            raise _Failed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            host.collect_woken = None

    async def _dead_letter(self, guild: CeleryGuild, inbox: Inbox, message_id: int, body: bytes | None,
                           attempts: int) -> None:
        reason = await inbox.last_failure(message_id) or "its handling never finished (the process handling it stopped)"
        await dead_letters.dead_letter(guild, agent_id=inbox.agent_id, message_id=message_id,
                                       body=dead_letters.body_of(body), reason=reason, attempts=attempts - 1)

    async def _drop_all(self, inbox: Inbox, token: str, pending: Batch | None) -> None:
        dropped = 0
        while pending is not None:
            dropped += len(pending.entries)
            pending = await inbox.step(token, [i for i, _ in pending.entries], BATCH)
        logger.warning("agent %s is not (or no longer) running: %d waiting message(s) dropped", inbox.agent_id, dropped)

    async def _keep_lease(self, inbox: Inbox, token: str, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            try:
                if not await inbox.renew_lease(token, LEASE_MS):
                    lost.set()  # another drain holds the agent: this one stops before its next message
                    return
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
        if host is not None and record.spec != host.spec.model_dump(mode="json"):
            host = None  # its spec changed: built anew from the record
        try:
            if host is None:
                host = await guild.host(AgentSpec.model_validate(record.spec), record.kind, record.state, record.runtime)
                host.prepare()
                host.started = True
                host._ready.set()  # its on_start ran when it was started, wherever that was
                self._hosts[key] = host
            host.state = dict(record.state or {})
            host.runtime = dict(record.runtime or {})
            host.agent.import_memory(host.runtime.get(MEMORY))
        except Exception as exc:
            self._hosts.pop(key, None)
            raise _Failed(f"the agent could not be loaded: {type(exc).__name__}: {exc}") from exc
        host.delivery.version = version
        return host

    async def _remember(self, host: AgentHost) -> None:
        memory = host.agent.export_memory()
        if memory is not None and memory != host.runtime.get(MEMORY):
            await host.runtime_update({MEMORY: memory}, whole=True)


def _periodic(message: Message) -> bool:
    return formats.canonical_format(message.format) == formats.HEALTH_CHECK_REQUEST


async def _uncounted(inbox: Inbox, message_id: int) -> None:
    """An outage (Redis, the database) is not the message's fault: the attempt does not count."""
    try:
        await inbox.uncount(message_id)
    except _OUTAGES:
        pass  # Redis is the one away: the attempt stays counted (at most one per outage)


def _decoded(body: bytes | None) -> Message:
    if body is None:
        raise _Failed("its body is gone from the inbox")
    try:
        return Message.from_json(body)
    except InvalidMessage as exc:
        raise _Failed(f"it cannot be decoded: {exc}") from None
