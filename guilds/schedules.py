"""Schedules: messages sent into a guild on a cron schedule, each firing exactly once.

A schedule stores its next firing (`next_run_at`, UTC). One periodic tick (Celery beat's task in production,
an in-process ticker on the embedded default; `tick(now=...)` in tests) claims the due rows (row locks
skipped by other ticks on PostgreSQL; a conditional update elsewhere), moves `next_run_at` on past now and
sends the firings after its transaction commits: a second tick, or one restarted mid-way, finds nothing due
that was claimed. A firing is sent only while its guild is RUNNING or WARNING.

Cron times are wall-clock times in the schedule's time zone (cronsim): a time in a spring-forward gap fires
at the first valid instant after it; a time named by a fixed hour that falls back into a repeated hour fires
at its first occurrence only (a schedule that runs every hour keeps its pace through the repeated hour).

Misfires (a firing due while no tick ran, or while the guild was starting or in ERROR): `skip` drops them
(a firing up to a minute late, or three ticks where they are further apart, is on time); `run_once` sends one
catch-up firing if the latest missed one is at most GUILDSITE_SCHEDULE_GRACE_SECONDS old. A STOPPED guild's
schedules are disabled as it stops (guilds.runtime.store), and by the tick should one be left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from guilds.models import STOPPED_GUILD_REASON, GuildStatus, MisfirePolicy, Schedule

logger = logging.getLogger(__name__)

ON_TIME_AT_LEAST_SECONDS = 60.0


def on_time_seconds() -> float:
    """How late a `skip` firing may be sent: a minute, or three ticks where ticks are further apart."""
    return max(ON_TIME_AT_LEAST_SECONDS, 3 * settings.GUILDSITE_SCHEDULE_TICK_SECONDS)

FIRING_STATUSES = frozenset({GuildStatus.RUNNING, GuildStatus.WARNING})
CLAIM_BATCH = 500  # rows claimed per transaction: a tick over many due schedules commits as it goes
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


class ScheduleInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def cron_check(cron: str) -> str:
    """The expression, normalised; ScheduleInvalid names the field that is wrong."""
    normalised = " ".join(str(cron).split())
    if len(normalised.split(" ")) != 5:
        raise ScheduleInvalid("cron", f"a cron expression has five fields ({' '.join(CRON_FIELDS)}); "
                                      f"'{normalised}' has {len(normalised.split(' ')) if normalised else 0}")
    try:
        CronSim(normalised, datetime.now(UTC))
    except CronSimError as exc:  # "Bad minute", "Bad day-of-week"…
        raise ScheduleInvalid("cron", f"'{normalised}': {str(exc).lower().replace('bad ', 'bad field: ')}") from None
    return normalised


def timezone_check(name: str) -> ZoneInfo:
    if not isinstance(name, str) or name not in _zone_names():
        raise ScheduleInvalid("timezone", f"'{name}' is not an IANA time zone name (like 'Europe/Berlin' or 'UTC')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid("timezone", f"'{name}' is not an IANA time zone name") from None


_zones: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _zones
    if _zones is None:
        _zones = frozenset(available_timezones())
    return _zones


def next_fire(cron: str, zone: str, after: datetime) -> datetime:
    """The first firing strictly after `after`, in UTC."""
    walk = CronSim(cron, after.astimezone(ZoneInfo(zone)))
    following = next(walk).astimezone(UTC)
    # In the second pass through a repeated (fall-back) hour, a fixed time's first pass is behind us: the next day's.
    while following <= after:
        following = next(walk).astimezone(UTC)
    return following


def latest_fire(cron: str, zone: str, due: datetime, now: datetime) -> datetime:
    """The last firing at or before `now`, given one is due at `due` (itself, when none came after it)."""
    before = next(CronSim(cron, (now + timedelta(seconds=1)).astimezone(ZoneInfo(zone)), reverse=True))
    return max(due, before.astimezone(UTC))


# --- the tick --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    schedule_id: str
    due_at: datetime


def tick(now: datetime | None = None) -> list[Firing]:
    """Claim and send every firing due at `now` (default: the clock). Returns what was sent."""
    now = now or timezone.now()
    fired: list[Firing] = []
    while True:
        claimed = _claim_batch(now)
        fired += claimed.fired
        if claimed.rows < CLAIM_BATCH or not claimed.changed:
            return fired


@dataclass
class _Claimed:
    rows: int
    changed: int
    fired: list[Firing]


# Due, and either its guild can take it (or is stopped: its schedules are disabled) or its missed firings are
# dropped: a catch-up firing waiting for its guild to be ready is not claimed until it is.
_CLAIMABLE = Q(guild__status__in=[*FIRING_STATUSES, GuildStatus.STOPPED]) | Q(misfire_policy=MisfirePolicy.SKIP)


def _claim_batch(now: datetime) -> _Claimed:
    fired: list[Firing] = []
    locking = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        due = Schedule.objects.select_related("guild").filter(_CLAIMABLE, enabled=True, next_run_at__lte=now).order_by(
            "next_run_at", "pk")
        if locking:
            due = due.select_for_update(skip_locked=True, of=("self",))
        rows = list(due[:CLAIM_BATCH])
        moves: dict[tuple[datetime | None, bool, str], list[str]] = {}  # the same move, for many rows at once
        to_send: list[Schedule] = []
        changed = 0
        for schedule in rows:
            decision = _decide(schedule, now)
            if decision is None:
                continue
            if decision.enabled and (decision.next_run_at is None or decision.next_run_at <= now):
                logger.error("schedule %s: its next firing %s is not after now; disabled", schedule.pk,
                             decision.next_run_at)
                decision = _Decision(next_run_at=None, enabled=False, disabled_reason="its next firing could not be found")
            move = {"next_run_at": decision.next_run_at, "enabled": decision.enabled,
                    "disabled_reason": decision.disabled_reason, "updated_at": now}
            if locking:  # the row is ours until commit
                moves.setdefault((decision.next_run_at, decision.enabled, decision.disabled_reason), []).append(
                    schedule.pk)
            elif not Schedule.objects.filter(pk=schedule.pk, next_run_at=schedule.next_run_at).update(**move):
                continue  # another tick claimed it first (no row locks here: the conditional update decides)
            changed += 1
            if decision.fire is not None:
                fired.append(decision.fire)
                to_send.append(schedule)
        for (next_run_at, enabled, reason), ids in moves.items():
            Schedule.objects.filter(pk__in=ids).update(next_run_at=next_run_at, enabled=enabled, disabled_reason=reason,
                                                       updated_at=now)
        if to_send:
            transaction.on_commit(lambda: _send(to_send))
    return _Claimed(rows=len(rows), changed=changed, fired=fired)


@dataclass(frozen=True)
class _Decision:
    next_run_at: datetime | None
    fire: Firing | None = None
    enabled: bool = True
    disabled_reason: str = ""


def _decide(schedule: Schedule, now: datetime) -> _Decision | None:
    """What a due schedule does now; None: nothing yet (a catch-up waiting for its guild to be ready)."""
    due = schedule.next_run_at
    status = schedule.guild.status
    if status == GuildStatus.STOPPED:
        return _Decision(next_run_at=None, enabled=False, disabled_reason=STOPPED_GUILD_REASON)
    catch_up = schedule.misfire_policy == MisfirePolicy.RUN_ONCE
    within = settings.GUILDSITE_SCHEDULE_GRACE_SECONDS if catch_up else on_time_seconds()
    try:
        latest = latest_fire(schedule.cron, schedule.timezone, due, now)
        following = next_fire(schedule.cron, schedule.timezone, now)
    except (CronSimError, ZoneInfoNotFoundError, ValueError):
        logger.exception("schedule %s cannot be evaluated; disabled", schedule.pk)
        return _Decision(next_run_at=None, enabled=False, disabled_reason="its cron or time zone cannot be read")
    late = (now - latest).total_seconds()
    if late > within:
        return _Decision(next_run_at=following)  # missed, and too long ago: dropped
    if status not in FIRING_STATUSES:
        # Not ready (starting, ERROR): skip drops the firing; run_once keeps it due while it is within grace.
        return None if catch_up else _Decision(next_run_at=following)
    return _Decision(next_run_at=following, fire=Firing(schedule.pk, latest))


def _send(claimed: list[Schedule]) -> None:
    from guilds.services import schedule_messages_send

    try:
        schedule_messages_send(schedules=claimed)
    except Exception:  # claimed already: these firings are lost, said loudly, never sent twice
        logger.exception("a tick's firings could not be sent (%d schedules)", len(claimed))


# --- writes ------------------------------------------------------------------------------------


def schedule_next_run(schedule: Schedule, now: datetime | None = None) -> None:
    """Set `next_run_at` from now (on create, on resume, when the cron or zone changes); none while disabled."""
    schedule.next_run_at = (next_fire(schedule.cron, schedule.timezone, now or timezone.now())
                            if schedule.enabled else None)


def schedule_fields(data: dict[str, Any], *, agent_ids_by_name: dict[str, str]) -> dict[str, Any]:
    """Checked fields for a Schedule from an API body (already shaped by its serializer)."""
    fields: dict[str, Any] = {}
    if "cron" in data:
        fields["cron"] = cron_check(data["cron"])
    if "timezone" in data:
        timezone_check(data["timezone"])
        fields["timezone"] = data["timezone"]
    if "agent" in data:
        name = data["agent"]
        if name is not None and name not in agent_ids_by_name:
            raise ScheduleInvalid("agent", f"the guild has no agent named '{name}'")
        fields["agent_id"] = "" if name is None else agent_ids_by_name[name]
    for name in ("name", "format", "payload", "misfire_policy", "enabled"):
        if name in data:
            fields[name] = data[name]
    return fields


__all__ = ["ScheduleInvalid", "cron_check", "next_fire", "schedule_fields", "schedule_next_run",
           "tick", "timezone_check"]
