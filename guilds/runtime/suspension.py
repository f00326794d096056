"""Suspending guilds nobody uses, and resuming them when someone does.

A guild with no socket and no message (guilds.runtime.activity) for GUILDSITE_GUILD_IDLE_SECONDS is
suspended by whatever runs its periodic work (the in-process engine's own loop; Celery beat's task):
its agents are unloaded as a restart would (their state stays in the database), its status is left as
it was, and `Guild.suspended` says so. Anything that uses it resumes it first: a socket connecting, a
REST call that reaches its agents, a relaunch (guilds.services.guild_resume). Resuming relaunches it
while its status stays RUNNING (the manager is told it is a resume).

Two rules keep a connecting socket from meeting a guild being unloaded:
- a user marks the guild used (written through) before it looks at the flag, and a suspension sets the
  flag before it looks at the guild's use a last time: one of the two sees the other;
- suspending and resuming one guild never overlap (a lock per guild: in Redis with REDIS_URL, so
  every process shares it; else in this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from django.conf import settings

from guilds.models import GuildStatus
from guilds.runtime import formats, store
from guilds.runtime.activity import activity, idle_seconds
from guilds.runtime.host import MANAGER_ID
from guilds.spec import GuildSpec
from messaging import topics as topic_names
from messaging.delivery import scripts
from messaging.message import AgentTag, Message

if TYPE_CHECKING:
    from guilds.engines.base import ExecutionEngine

logger = logging.getLogger(__name__)

LOCK_MS = 30_000  # longer than any unload or relaunch takes; a process that dies holding it frees it
AGENTS_BACK_SECONDS = 10.0  # a resume waits this long at most for the spec's agents to be up again
_local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


@contextlib.asynccontextmanager
async def _guild_lock(guild_id: str) -> AsyncIterator[None]:
    client = activity().redis()
    if client is None:
        lock = _local_locks.get(guild_id)
        if lock is None:
            lock = _local_locks[guild_id] = asyncio.Lock()
        async with lock:
            yield
        return
    key, token = f"{settings.GUILDSITE_CACHE_PREFIX}:guild-suspension:{guild_id}", uuid.uuid4().hex
    deadline, pause = time.monotonic() + LOCK_MS / 1000, 0.01
    while not await client.set(key, token, nx=True, px=LOCK_MS):
        if time.monotonic() > deadline:
            raise TimeoutError(f"guild {guild_id} is being suspended or resumed elsewhere for too long")
        await asyncio.sleep(pause)  # another process suspends or resumes it: its lock is all we see
        pause = min(0.2, pause * 2)
    try:
        yield
    finally:
        await scripts.run(client, scripts.RELEASE_LEASE, 1, key, token)


def _idle(last_used: float | None, idle: float, now: float) -> bool:
    return last_used is not None and now - last_used > idle


async def suspend_idle(engine: ExecutionEngine, guild_ids: list[str], idle: float | None = None) -> list[str]:
    """Suspend those of `guild_ids` (guilds `engine` runs) unused for `idle` seconds (default: the
    setting; 0 never). Returns the ids suspended."""
    idle = idle_seconds() if idle is None else idle
    if idle <= 0 or not guild_ids:
        return []
    record = activity()
    seen = await record.last_used(guild_ids)
    suspended = []
    for guild_id, last_used in seen.items():
        if last_used is None:
            await record.mark(guild_id)  # no record (just launched, or this process just started): the clock starts
            continue
        if _idle(last_used, idle, time.time()):
            try:
                if await _suspend(engine, guild_id, idle):
                    suspended.append(guild_id)
            except Exception:
                logger.exception("suspending an idle guild failed", extra={"guild_id": guild_id})
    return suspended


async def _suspend(engine: ExecutionEngine, guild_id: str, idle: float) -> bool:
    async with _guild_lock(guild_id):
        if not await store.guild_suspended_set(guild_id, True):
            return False  # suspended already, or not settled (launching, ERROR, STOPPED)
        last_used = (await activity().last_used([guild_id]))[guild_id]
        if not _idle(last_used, idle, time.time()):
            await store.guild_suspended_set(guild_id, False)  # used meanwhile: it stays up
            return False
        record = await store.guild_load(guild_id)
        await engine.forget(guild_id)
        await _report_suspended(engine, guild_id, record)
    logger.info("guild suspended: unused for %.0fs, its agents unloaded", time.time() - last_used,
                extra={"guild_id": guild_id})
    return True


async def _report_suspended(engine: ExecutionEngine, guild_id: str, record) -> None:
    """The last report before the suspension says every agent is fine: a system socket opening now would
    show it, and a client would send before the agents are back. This one says they are starting."""
    try:
        spec = GuildSpec.model_validate(record.spec)
        await engine.bus(guild_id, spec.properties.messaging).publish(Message.create(
            sender=AgentTag(id=MANAGER_ID, name="GuildManagerAgent"), topics=topic_names.GUILD_STATUS_TOPIC,
            format=formats.AGENTS_HEALTH_REPORT,
            payload={"agents": {}, "guild_health": "starting", "guild_status": record.status, "suspended": True},
        ))
    except Exception:
        logger.exception("could not publish the suspended guild's report", extra={"guild_id": guild_id})


async def resume(engine: ExecutionEngine, guild_id: str) -> bool:
    """The guild is being used: marked so, and relaunched if it was suspended. Returns once the spec's
    agents run again (a message sent next finds them listening), or AGENTS_BACK_SECONDS passed; True if
    this call resumed it."""
    await activity().mark(guild_id)  # before looking at the flag (see the module's note)
    if not await store.guild_is_suspended(guild_id):
        return False
    async with _guild_lock(guild_id):
        if not await store.guild_is_suspended(guild_id):
            return False  # resumed by someone else meanwhile, or its suspension stood back
        if await engine.launch(guild_id, resumed=True):
            await _agents_back(engine, guild_id)
        await store.guild_suspended_set(guild_id, False)
    logger.info("guild resumed", extra={"guild_id": guild_id})
    return True


async def _agents_back(engine: ExecutionEngine, guild_id: str) -> None:
    record = await store.guild_load(guild_id)
    wanted = {agent.id for agent in GuildSpec.model_validate(record.spec).agents} if record is not None else set()
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + AGENTS_BACK_SECONDS, 0.005
    while not wanted <= set(await engine.running_agent_ids(guild_id)):
        if loop.time() > deadline or await store.guild_status(guild_id) == GuildStatus.ERROR:
            return  # an agent that cannot start: the guild's status and report say so
        await asyncio.sleep(pause)  # the manager starts them on its own queue
        pause = min(0.1, pause * 2)
