"""The runtime's reads and writes of guild state in the database (async, off the loop's thread).

Status changes are conditional updates: a transition not allowed from the current status
(see guilds.lifecycle) changes nothing, so racing writers cannot move a STOPPED guild.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from django.db import Error as DatabaseError
from django.db import close_old_connections, reset_queries, transaction
from django.db.models import Count
from django.utils import timezone

from guilds.lifecycle import predecessors
from guilds.models import (
    STATUS_CHANGES_KEPT,
    STOPPED_GUILD_REASON,
    AgentKind,
    AgentStatus,
    DeadLetter,
    Guild,
    GuildAgent,
    GuildStatus,
    GuildStatusChange,
    Schedule,
)
from guilds.runtime import live
from messaging.topics import GUILD_MANAGER_ID

logger = logging.getLogger(__name__)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# The runtime's own database threads: never the request threads, never blocking the loop.
_db_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="guildsite-db")


def close_connections() -> None:
    """Close the runtime threads' database connections (each thread holds its own)."""
    from django.db import connections

    workers = len(_db_threads._threads)  # the threads started so far, each with its own connection
    if not workers:
        return
    barrier = threading.Barrier(workers, timeout=5)

    def close_here() -> None:
        connections.close_all()
        barrier.wait()  # keeps this thread busy until every worker thread has taken one

    list(_db_threads.map(lambda _: close_here(), range(workers)))


_CONNECTION_CHECK_SECONDS = 5.0
_checked = threading.local()


def _db(fn):
    """Run an ORM function on the runtime's database threads, with a fresh-enough connection."""

    def call(*args, **kwargs):
        # Checking the connection (CONN_HEALTH_CHECKS) costs a round trip: every few seconds,
        # and after any database error, not per call.
        now = time.monotonic()
        if now - getattr(_checked, "at", -_CONNECTION_CHECK_SECONDS) >= _CONNECTION_CHECK_SECONDS:
            close_old_connections()
            _checked.at = now
        try:
            return fn(*args, **kwargs)
        except DatabaseError:
            _checked.at = -_CONNECTION_CHECK_SECONDS
            raise
        finally:
            # With DEBUG on, a connection logs its last 9,000 queries until a request starts; these
            # threads serve no request, so the log would only grow (hundreds of MB in a worker).
            reset_queries()

    @functools.wraps(fn)
    async def wrapped(*args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(_db_threads, functools.partial(call, *args, **kwargs))

    return wrapped


# For other runtime modules with rows of their own (guilds.agents.llm.records): the same threads and checks.
on_db_threads = _db


@_db
def guild_load(guild_id: str) -> Guild | None:
    return Guild.objects.filter(pk=guild_id).first()


# Only the manager moves a guild into these, so the manager is up: its own row says so (it sends itself no
# heartbeat, and nothing else would move it on from "starting").
_MANAGER_ALIVE_STATUSES = frozenset({GuildStatus.PENDING_LAUNCH, GuildStatus.STARTING, GuildStatus.RUNNING,
                                     GuildStatus.WARNING})


async def guild_status_set(guild_id: str, status: str, detail: str = "") -> bool:
    """Move the guild to `status` if the lifecycle allows it from where it is; True if it moved (its followers on
    the live socket are told, with the health summary)."""
    moved = await _guild_status_write(guild_id, status, detail)
    if moved is not None:
        from guilds.runtime import outbound  # it stores through this module's database threads

        await live.guild_status(**moved)
        await outbound.guild_status_changed(guild_id=guild_id, status=status, detail=detail)
    return moved is not None


@_db
def _guild_status_write(guild_id: str, status: str, detail: str) -> dict[str, Any] | None:
    """The move, in the database: None when the lifecycle did not allow it, else what the live event says."""
    now = timezone.now()
    fields: dict[str, Any] = {"status": status, "status_detail": detail, "updated_at": now}
    if status == GuildStatus.RUNNING:
        fields["started_at"] = now
    if status == GuildStatus.STOPPED:
        fields.update(stopped_at=now, suspended=False, suspended_at=None)  # final: nothing to resume
    moved = Guild.objects.filter(pk=guild_id, status__in=predecessors(status)).update(**fields)
    if moved and status == GuildStatus.STOPPED:  # final: its schedules will not fire again, and say so
        Schedule.objects.filter(guild_id=guild_id, enabled=True).update(
            enabled=False, next_run_at=None, disabled_reason=STOPPED_GUILD_REASON, updated_at=now)
    if moved and status in _MANAGER_ALIVE_STATUSES:
        GuildAgent.objects.filter(guild_id=guild_id, agent_id=GUILD_MANAGER_ID).exclude(
            status=AgentStatus.RUNNING).update(status=AgentStatus.RUNNING, status_detail="", updated_at=now)
    if moved:
        # Last, and on its own: the move and what it implies stand even if its timeline line cannot be written (a
        # transaction around them all would hold the guild's row while it waits for the timeline's table).
        try:
            _status_change_record(guild_id, status, detail, now)
        except DatabaseError:
            logger.warning("guild %s moved to %s; its timeline line could not be written", guild_id, status,
                           exc_info=True)
    if not moved:
        # Same status again only refreshes the reason (e.g. WARNING for another agent).
        Guild.objects.filter(pk=guild_id, status=status).exclude(status_detail=detail).update(
            status_detail=detail, updated_at=now
        )
        return None
    try:
        return {"guild_id": guild_id, "organization_id": _organization_of(guild_id), "status": status,
                "detail": detail, "agents": _agent_summary(guild_id), "at": now.isoformat()}
    except DatabaseError:  # the move is made; only its live event is lost
        logger.warning("guild %s moved to %s; its live event could not be made", guild_id, status, exc_info=True)
        return {"guild_id": guild_id, "organization_id": None, "status": status, "detail": detail, "agents": {},
                "at": now.isoformat()}


def _status_change_record(guild_id: str, status: str, detail: str, at) -> None:
    """The move in the guild's health timeline; beyond its newest STATUS_CHANGES_KEPT, the oldest go."""
    GuildStatusChange.objects.create(guild_id=guild_id, status=status, detail=detail, at=at)
    too_old = list(GuildStatusChange.objects.filter(guild_id=guild_id).order_by("-id")
                   .values_list("id", flat=True)[STATUS_CHANGES_KEPT:STATUS_CHANGES_KEPT + 1])
    if too_old:
        GuildStatusChange.objects.filter(guild_id=guild_id, id__lte=too_old[0]).delete()


def _agent_summary(guild_id: str) -> dict[str, int]:
    """How many of the guild's agents (users' proxies aside) are in each status."""
    rows = (GuildAgent.objects.filter(guild_id=guild_id).exclude(kind=AgentKind.HUMAN).order_by()
            .values_list("status").annotate(count=Count("pk")))
    return dict(rows)


_organizations: dict[str, str | None] = {}  # guild id -> its organisation's: a guild never changes organisation


def _organization_of(guild_id: str) -> str | None:
    if guild_id not in _organizations:
        if len(_organizations) >= 4096:
            _organizations.clear()
        _organizations[guild_id] = Guild.objects.filter(pk=guild_id).values_list("organization_id", flat=True).first()
    return _organizations[guild_id]


_guild_organization_read = _db(_organization_of)


async def guild_organization_id(guild_id: str) -> str | None:
    """The guild's organisation; once known in this process, without a hop to a database thread."""
    if guild_id in _organizations:
        return _organizations[guild_id]
    return await _guild_organization_read(guild_id)


# A guild is suspended only once it has settled: launching or in ERROR, its agents are not idle, they are not up.
SUSPENDABLE_STATUSES = (GuildStatus.RUNNING, GuildStatus.WARNING)


@_db
def guild_suspended_set(guild_id: str, suspended: bool) -> bool:
    """Flip the guild's suspended flag (suspending only a settled guild); True if this call flipped it."""
    query = Guild.objects.filter(pk=guild_id, suspended=not suspended)
    if suspended:
        query = query.filter(status__in=SUSPENDABLE_STATUSES)
    return bool(query.update(suspended=suspended, suspended_at=timezone.now() if suspended else None))


@_db
def guild_is_suspended(guild_id: str) -> bool:
    return bool(Guild.objects.filter(pk=guild_id).values_list("suspended", flat=True).first())


@_db
def guild_status(guild_id: str) -> str | None:
    return Guild.objects.filter(pk=guild_id).values_list("status", flat=True).first()


@_db
def agent_record_ensure(
    guild_id: str, *, agent_id: str, name: str, kind: str, class_name: str, spec: dict
) -> GuildAgent:
    """The agent's row (created on first launch), with its kept state and the engine's bookkeeping."""
    record, _ = GuildAgent.objects.get_or_create(
        guild_id=guild_id,
        agent_id=agent_id,
        defaults={"name": name, "kind": kind, "class_name": class_name, "spec": spec},
    )
    if record.status != AgentStatus.STARTING:
        GuildAgent.objects.filter(pk=record.pk).update(status=AgentStatus.STARTING, status_detail="")
    return record


@_db
def agent_record(guild_id: str, agent_id: str) -> GuildAgent | None:
    return GuildAgent.objects.filter(guild_id=guild_id, agent_id=agent_id).first()


@_db
def agent_records(guild_id: str, kind: str | None = None) -> list[GuildAgent]:
    query = GuildAgent.objects.filter(guild_id=guild_id).exclude(status=AgentStatus.STOPPED)
    if kind:
        query = query.filter(kind=kind)
    return list(query)


@_db
def user_proxies(guild_id: str) -> list[tuple[str, str, str, str, datetime]]:
    """(agent_id, name, status, detail, updated_at) of the guild's user proxies not stopped: their health
    lives here, not in the manager's memory, which a Celery worker saves after every message."""
    return list(GuildAgent.objects.filter(guild_id=guild_id, kind=AgentKind.HUMAN).exclude(
        status=AgentStatus.STOPPED).order_by("pk").values_list("agent_id", "name", "status", "status_detail",
                                                               "updated_at"))


async def agent_status_set(guild_id: str, agent_id: str, status: str, detail: str = "") -> None:
    """Record an agent's status; a change is told to the agent's and the guild's followers (a user's proxy
    coming and going is presence: not told)."""
    changed = await _agent_status_write(guild_id, agent_id, status, detail)
    for agent in changed:
        await live.agent_status(guild_id=guild_id, **agent)


async def agents_stopped(guild_id: str) -> None:
    for agent in await _agents_stopped_write(guild_id):
        await live.agent_status(guild_id=guild_id, **agent)


def _agent_events(guild_id: str, agent_ids: list[str]) -> list[dict[str, Any]]:
    """What the live agent_status events say of these agents; none when that cannot be read (the change is made,
    only its live event is lost)."""
    agents = GuildAgent.objects.filter(guild_id=guild_id, agent_id__in=agent_ids).exclude(kind=AgentKind.HUMAN)
    try:
        return [{"agent_id": agent_id, "name": name, "kind": kind, "status": status, "detail": detail,
                 "at": updated_at.isoformat()}
                for agent_id, name, kind, status, detail, updated_at in agents.values_list(
                    "agent_id", "name", "kind", "status", "status_detail", "updated_at")]
    except DatabaseError:
        logger.warning("agents of guild %s changed; their live events could not be made", guild_id, exc_info=True)
        return []


@_db
def _agent_status_write(guild_id: str, agent_id: str, status: str, detail: str) -> list[dict[str, Any]]:
    # Only a start (agent_record_ensure) brings a stopped agent back: a heartbeat or a silence noticed late
    # must not, or a drain would take the stopped agent for a live one and handle its messages.
    changed = GuildAgent.objects.filter(guild_id=guild_id, agent_id=agent_id).exclude(
        status=AgentStatus.STOPPED).exclude(status=status, status_detail=detail).update(
        status=status, status_detail=detail, updated_at=timezone.now())
    if not changed or live.is_user_proxy(agent_id):
        return []
    return _agent_events(guild_id, [agent_id])


@_db
def _agents_stopped_write(guild_id: str) -> list[dict[str, Any]]:
    changed = GuildAgent.objects.filter(guild_id=guild_id).exclude(status=AgentStatus.STOPPED).exclude(
        kind=AgentKind.HUMAN).values_list("agent_id", flat=True)
    changed = list(changed)
    GuildAgent.objects.filter(guild_id=guild_id).update(status=AgentStatus.STOPPED, updated_at=timezone.now())
    return _agent_events(guild_id, changed) if changed else []


@_db
def agent_state_save(guild_id: str, agent_id: str, state: dict) -> None:
    GuildAgent.objects.filter(guild_id=guild_id, agent_id=agent_id).update(state=state, updated_at=timezone.now())


@_db
def agent_runtime_save(guild_id: str, agent_id: str, runtime: dict) -> None:
    GuildAgent.objects.filter(guild_id=guild_id, agent_id=agent_id).update(runtime=runtime, updated_at=timezone.now())


@_db
def dead_letter_save(guild_id: str, *, agent_id: str, message_id: int, message: dict, reason: str,
                     attempts: int) -> DeadLetter:
    letter, _ = DeadLetter.objects.update_or_create(
        guild_id=guild_id, agent_id=agent_id, message_id=message_id,
        defaults={"message": message, "reason": reason, "attempts": attempts, "failed_at": timezone.now()},
    )
    return letter


@_db
def guild_state_load(guild_id: str) -> dict:
    return dict(Guild.objects.filter(pk=guild_id).values_list("state", flat=True).first() or {})


@_db
def guild_state_merge(guild_id: str, patch: dict) -> dict:
    with transaction.atomic():
        guild = Guild.objects.select_for_update().only("state").get(pk=guild_id)
        guild.state = merge_patch(guild.state or {}, patch)
        Guild.objects.filter(pk=guild_id).update(state=guild.state, updated_at=timezone.now())
        return dict(guild.state)


