"""Schedules firing (guilds.schedules): exactly once per firing under concurrent ticks, DST in two time zones,
both misfire policies, a guild not ready, a stopped guild. Ticks are driven with an explicit `now`; the guild
runs on each engine of the rig, and a firing's run is followed to its end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from guilds import schedules
from guilds.models import Guild, GuildStatus, MisfirePolicy, Run, RunStatus, RunTrigger, Schedule
from guilds.services import guild_stop
from tests.runtime.conftest import echo_spec, wait_for
from tests.support.together import at_once

# 2026-12-07 09:00 UTC, a Monday.
MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def running(rig):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    return guild


def schedule(guild, *, cron: str = "0 9 * * *", zone: str = "UTC", misfire: str = MisfirePolicy.SKIP,
             due: datetime = MONDAY_9, to_agent: bool = True, **fields) -> Schedule:
    agent_id = guild.spec["agents"][0]["id"] if to_agent else ""
    return Schedule.objects.create(guild=guild, organization_id=guild.organization_id, cron=cron, timezone=zone,
                                   agent_id=agent_id, payload={"text": "good morning"}, misfire_policy=misfire,
                                   next_run_at=due, **fields)


def runs_of(made: Schedule) -> list[Run]:
    return list(Run.objects.filter(guild=made.guild, requester=made.sender_id).order_by("created_at"))


# --- cron and time zones (no guild needed) ------------------------------------------------------


@pytest.mark.parametrize(("zone", "cron", "after", "expected_utc"), [
    # New York springs forward on 2026-03-08 at 02:00: 02:30 does not exist, it fires at 03:00 EDT.
    ("America/New_York", "30 2 * * *", datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    # ... and falls back on 2026-11-01: 01:30 happens twice, it fires at the first (EDT).
    ("America/New_York", "30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    # Berlin springs forward on 2026-03-29 at 02:00 and falls back on 2026-10-25 at 03:00.
    ("Europe/Berlin", "30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("Europe/Berlin", "30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
])
def test_a_wall_clock_time_fires_once_across_dst(zone, cron, after, expected_utc):
    first = schedules.next_fire(cron, zone, after)
    assert first == expected_utc
    # The day after it is the cron's wall-clock time again, once.
    local = schedules.timezone_check(zone)
    second = schedules.next_fire(cron, zone, first)
    assert second.astimezone(local).date() == first.astimezone(local).date() + timedelta(days=1)
    assert second.astimezone(local).strftime("%H:%M") == cron_time(cron)


def test_in_the_second_pass_of_a_repeated_hour_the_next_firing_is_still_ahead():
    # 2026-11-01 01:10 EST (06:10 UTC), after New York's fall-back: today's 01:20 EDT (05:20 UTC) is behind us.
    after = datetime(2026, 11, 1, 6, 10, tzinfo=UTC)
    assert schedules.next_fire("20 1 * * *", "America/New_York", after) == datetime(2026, 11, 2, 6, 20, tzinfo=UTC)


def cron_time(cron: str) -> str:
    minute, hour = cron.split()[:2]
    return f"{int(hour):02d}:{int(minute):02d}"


def test_a_bad_cron_names_its_field():
    for cron, named in [("61 * * * *", "minute"), ("* 25 * * *", "hour"), ("* * 32 * *", "day-of-month"),
                        ("* * * 13 *", "month"), ("* * * * 8", "day-of-week"), ("* * *", "five fields")]:
        with pytest.raises(schedules.ScheduleInvalid) as caught:
            schedules.cron_check(cron)
        assert caught.value.field == "cron"
        assert named in str(caught.value), cron
    with pytest.raises(schedules.ScheduleInvalid):
        schedules.timezone_check("Mars/Olympus_Mons")


# --- the tick -------------------------------------------------------------------------------------


def test_a_due_schedule_fires_once_and_its_run_ends(rig, running):
    made = schedule(running)
    assert schedules.tick(MONDAY_9 - timedelta(seconds=1)) == []  # not due yet
    fired = schedules.tick(MONDAY_9 + timedelta(seconds=3))
    assert [f.schedule_id for f in fired] == [made.pk]
    assert schedules.tick(MONDAY_9 + timedelta(seconds=4)) == []  # claimed: a second tick finds nothing
    made.refresh_from_db()
    assert made.next_run_at == MONDAY_9 + timedelta(days=1)
    assert made.last_run_at is not None
    run = wait_for(lambda: next((r for r in runs_of(made) if r.status == RunStatus.SUCCEEDED), None), 15,
                   "the firing's run to succeed")
    assert run.trigger == RunTrigger.SCHEDULE
    made.refresh_from_db()
    assert made.last_run_id == run.pk
    assert len(runs_of(made)) == 1


@pytest.mark.services  # PostgreSQL's row locks (SQLite takes the conditional-update path, one writer at a time)
@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)
def test_two_concurrent_ticks_fire_each_schedule_once(rig, running):
    assert connection.vendor == "postgresql"
    made = [schedule(running, cron=f"{n} 9 * * *", due=MONDAY_9 + timedelta(minutes=n)) for n in range(20)]
    now = MONDAY_9 + timedelta(minutes=20, seconds=30)
    Schedule.objects.filter(pk__in=[m.pk for m in made]).update(next_run_at=now - timedelta(seconds=30))  # all on time
    results = at_once(lambda: schedules.tick(now))
    fired = [f.schedule_id for result in results for f in result]
    assert sorted(fired) == sorted(m.pk for m in made)  # each once, whichever tick took it
    wait_for(lambda: sum(len(runs_of(m)) for m in made) == 20, 15, "a run per firing")
    assert all(len(runs_of(m)) == 1 for m in made)


def test_skip_drops_a_late_firing_and_run_once_catches_up_once_within_grace(rig, running, settings):
    settings.GUILDSITE_SCHEDULE_GRACE_SECONDS = 300
    every_minute_missed = schedule(running, cron="* * * * *", due=MONDAY_9)
    skip = schedule(running, due=MONDAY_9)
    catch_up = schedule(running, misfire=MisfirePolicy.RUN_ONCE, due=MONDAY_9)
    too_late = schedule(running, cron="50 8 * * *", misfire=MisfirePolicy.RUN_ONCE, due=MONDAY_9 - timedelta(minutes=10))
    now = MONDAY_9 + timedelta(minutes=4)
    fired = {f.schedule_id for f in schedules.tick(now)}
    # A firing 4 minutes late is missed; run_once sends one (within 300 s), not one per missed minute.
    assert fired == {every_minute_missed.pk, catch_up.pk}
    for made in (every_minute_missed, skip, catch_up, too_late):
        made.refresh_from_db()
        assert made.next_run_at > now
    wait_for(lambda: len(runs_of(catch_up)) == 1 and len(runs_of(every_minute_missed)) == 1, 15, "the two runs")
    assert runs_of(skip) == []
    assert runs_of(too_late) == []


def test_a_guild_not_ready_drops_skip_firings_and_keeps_run_once_ones_until_it_is(rig, running):
    skip = schedule(running)
    catch_up = schedule(running, misfire=MisfirePolicy.RUN_ONCE)
    Guild.objects.filter(pk=running.pk).update(status=GuildStatus.STARTING)
    assert schedules.tick(MONDAY_9 + timedelta(seconds=5)) == []
    skip.refresh_from_db()
    catch_up.refresh_from_db()
    assert skip.next_run_at == MONDAY_9 + timedelta(days=1)  # dropped
    assert catch_up.next_run_at == MONDAY_9  # still due
    Guild.objects.filter(pk=running.pk).update(status=GuildStatus.RUNNING)
    assert [f.schedule_id for f in schedules.tick(MONDAY_9 + timedelta(minutes=2))] == [catch_up.pk]
    wait_for(lambda: len(runs_of(catch_up)) == 1, 15, "the catch-up run")


def test_a_stopped_guilds_schedules_are_disabled_and_say_why(rig, running):
    made = schedule(running)
    guild_stop(guild_id=running.pk, user_id="testuser123")
    made.refresh_from_db()  # disabled as the guild stops, not only when it comes due
    assert (made.enabled, made.next_run_at, made.disabled_reason) == (False, None, "its guild is stopped")
    Schedule.objects.filter(pk=made.pk).update(enabled=True, next_run_at=MONDAY_9)  # one left behind: the tick
    assert schedules.tick(MONDAY_9 + timedelta(seconds=5)) == []
    made.refresh_from_db()
    assert (made.enabled, made.next_run_at, made.disabled_reason) == (False, None, "its guild is stopped")
    assert runs_of(made) == []


def test_a_schedule_to_the_default_topic_fires_without_a_queued_run(rig, running):
    made = schedule(running, to_agent=False)
    assert [f.schedule_id for f in schedules.tick(MONDAY_9)] == [made.pk]
    made.refresh_from_db()
    assert made.last_run_id == ""
    assert made.last_run_at is not None
