"""GET|POST /api/guilds/{id}/schedules, GET|PATCH|DELETE /api/schedules/{id}, POST /api/schedules/{id}/run."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from guilds.models import Guild, GuildStatus, Run, RunStatus, RunTrigger, Schedule
from tests import factories
from tests.runtime.conftest import celery_workers, echo_spec, rig, wait_for  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(settings):
    settings.AUTH_DISABLED = False
    factories.organization("org-a", boss="admin", launcher="member", member="member", watcher="viewer")
    factories.organization("org-b", stranger="admin")


@pytest.fixture
def guild(people):
    return factories.guild("G", org="org-a", user="launcher", status=GuildStatus.RUNNING)


def create(api, guild, who: str = "launcher", **body):
    return api.post(f"/api/guilds/{guild.pk}/schedules", {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin",
                                                          "agent": "EchoAgent", "payload": {"text": "standup"},
                                                          **body}, format="json", **factories.bearer(who))


def test_a_schedule_is_made_with_its_next_firing_and_read_back(api, guild):
    response = create(api, guild, name="Standup")
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["agent"] == "EchoAgent"
    assert (made["cron"], made["timezone"], made["format"], made["misfire_policy"], made["enabled"]) == (
        "0 9 * * 1-5", "Europe/Berlin", "text", "skip", True)
    assert made["next_run_at"] is not None
    assert made["last_run_at"] is None
    assert made["created_by"] == "launcher"
    stored = Schedule.objects.get(pk=made["id"])
    assert stored.agent_id == guild.spec["agents"][0]["id"]
    assert stored.next_run_at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "09:00"
    listed = api.get(f"/api/guilds/{guild.pk}/schedules", **factories.bearer("watcher"))  # a viewer reads them
    assert [s["id"] for s in listed.json()] == [made["id"]]
    assert api.get(f"/api/schedules/{made['id']}", **factories.bearer("member")).json()["name"] == "Standup"


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"cron": "61 * * * *"}, "cron", "minute"),
    ({"cron": "* 25 * * *"}, "cron", "hour"),
    ({"cron": "* * * * 9"}, "cron", "day-of-week"),
    ({"cron": "0 9 * *"}, "cron", "five fields"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone", "IANA"),
    ({"agent": "NoSuchAgent"}, "agent", "NoSuchAgent"),
    ({"format": "not.a.format"}, "format", "unknown format"),
    ({"misfire_policy": "sometimes"}, "misfire_policy", "sometimes"),
    ({"payload": {"text": "x" * 70_000}}, "payload", "over the limit"),
])
def test_a_bad_field_is_a_400_naming_it(api, guild, problem, body, field, says):
    body = problem(create(api, guild, **body), 400)
    assert says in " ".join(body["errors"][field]), body


def test_pause_resume_and_delete(api, guild):
    made = create(api, guild).json()
    paused = api.patch(f"/api/schedules/{made['id']}", {"enabled": False}, format="json", **factories.bearer("boss"))
    assert paused.status_code == 200, paused.content
    assert (paused.json()["enabled"], paused.json()["next_run_at"]) == (False, None)
    resumed = api.patch(f"/api/schedules/{made['id']}", {"enabled": True, "cron": "30 7 * * *"}, format="json",
                        **factories.bearer("launcher"))
    assert resumed.json()["next_run_at"] is not None
    assert resumed.json()["cron"] == "30 7 * * *"
    assert api.delete(f"/api/schedules/{made['id']}", **factories.bearer("launcher")).status_code == 204
    assert api.get(f"/api/schedules/{made['id']}", **factories.bearer("launcher")).status_code == 404


def test_who_may_manage_and_who_may_read(api, guild, problem):
    made = create(api, guild).json()
    problem(create(api, guild, who="member"), 403)  # members read; the launcher and admins manage
    problem(api.patch(f"/api/schedules/{made['id']}", {"enabled": False}, format="json",
                      **factories.bearer("member")), 403)
    problem(api.post(f"/api/schedules/{made['id']}/run", **factories.bearer("watcher")), 403)
    problem(api.delete(f"/api/schedules/{made['id']}", **factories.bearer("member")), 403)
    for call in (lambda: api.get(f"/api/schedules/{made['id']}", **factories.bearer("stranger")),
                 lambda: api.get(f"/api/guilds/{guild.pk}/schedules", **factories.bearer("stranger")),
                 lambda: api.post(f"/api/schedules/{made['id']}/run", **factories.bearer("stranger")),
                 lambda: create(api, guild, who="stranger")):
        problem(call(), 404)  # another organisation's: not there
    problem(api.get("/api/schedules/no-such-schedule", **factories.bearer("launcher")), 404)


def test_a_stopped_guild_takes_no_new_schedule_and_a_starting_one_fires_none_now(api, guild, problem):
    made = create(api, guild).json()
    Guild.objects.filter(pk=guild.pk).update(status=GuildStatus.STARTING)
    assert "RUNNING" in problem(api.post(f"/api/schedules/{made['id']}/run", **factories.bearer("launcher")),
                                409)["detail"]
    Guild.objects.filter(pk=guild.pk).update(status=GuildStatus.STOPPED)
    problem(create(api, guild), 409)


def test_a_guild_has_at_most_its_share_of_schedules(api, guild, problem, settings):
    settings.GUILDSITE_SCHEDULES_PER_GUILD = 2
    assert [create(api, guild).status_code for _ in range(2)] == [201, 201]
    problem(create(api, guild), 409, "too_many_schedules")


@pytest.mark.django_db(transaction=True)
def test_run_now_sends_at_once_and_its_run_ends(api, rig, settings):  # noqa: F811 - pytest fixture injection
    settings.AUTH_DISABLED = False
    factories.organization("testorg456", testuser123="member")
    running = rig.create(echo_spec())
    rig.wait_status(running, GuildStatus.RUNNING)
    made = create(api, running, who="testuser123", cron="0 0 1 1 *").json()
    fired = api.post(f"/api/schedules/{made['id']}/run", **factories.bearer("testuser123"))
    assert fired.status_code == 202, fired.content
    run_id = fired.json()["run_id"]
    run = wait_for(lambda: Run.objects.filter(pk=run_id, status=RunStatus.SUCCEEDED).first(), 15, "the run to end")
    assert (run.trigger, run.requester) == (RunTrigger.SCHEDULE, f"schedule-{made['id']}")
    after = api.get(f"/api/schedules/{made['id']}", **factories.bearer("testuser123")).json()
    assert after["last_run_id"] == run_id
    assert after["next_run_at"] == made["next_run_at"]  # run now is not the scheduled firing
