"""Idempotency-Key on guild launch, POST /api/guilds/{id}/messages and a schedule's "run now": the same request
again gets the first answer and the work is done once; the same key for another request is a 409."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from guilds.engines import engine_named
from guilds.models import Guild, GuildStatus, IdempotentRequest, Run, Schedule
from guilds.runtime import loop as runtime_loop
from tests import factories
from tests.runtime.conftest import celery_workers, echo_spec, rig  # noqa: F401 - shared fixtures
from tests.support.together import at_once

LAUNCH = {"guild_name": "Once", "user_id": "boss", "org_id": "org-a"}


@pytest.fixture
def people(settings):
    settings.AUTH_DISABLED = False
    factories.organization("org-a", boss="admin")
    factories.organization("org-b", other="admin")


def launch(api, blueprint, key: str, who: str = "boss", **body):
    return api.post(f"/catalog/blueprints/{blueprint.pk}/guilds", {**LAUNCH, "user_id": who, **body}, format="json",
                    HTTP_IDEMPOTENCY_KEY=key, **factories.bearer(who))


@pytest.mark.django_db
def test_a_launch_sent_twice_with_one_key_makes_one_guild(api, people, problem):
    blueprint = factories.blueprint(author="boss", org="org-a")
    first = launch(api, blueprint, "launch-1")
    again = launch(api, blueprint, "launch-1")
    assert (first.status_code, again.status_code) == (201, 201), first.content
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert Guild.objects.count() == 1
    reused = problem(launch(api, blueprint, "launch-1", guild_name="Another"), 409, "idempotency_key_reused")
    assert "launch-1" in reused["detail"]
    assert Guild.objects.count() == 1
    assert launch(api, blueprint, "launch-2").json()["id"] != first.json()["id"]  # a new key: new work
    problem(launch(api, blueprint, "x" * 300), 400)


@pytest.mark.django_db
def test_keys_are_per_organisation(api, people):
    mine = factories.blueprint(author="boss", org="org-a")
    theirs = factories.blueprint(author="other", org="org-b")
    assert launch(api, mine, "same-key").status_code == 201
    assert launch(api, theirs, "same-key", who="other", org_id="org-b").status_code == 201
    assert Guild.objects.count() == 2


@pytest.mark.django_db
def test_a_failed_request_keeps_no_answer(api, people, problem):
    blueprint = factories.blueprint(author="boss", org="org-a")
    problem(launch(api, blueprint, "k", org_id="no-such-org"), 404)
    assert launch(api, blueprint, "k").status_code == 201  # worked on afresh, not answered 404 again


@pytest.mark.django_db
def test_a_key_whose_first_request_died_at_work_is_free_again(api, people):
    blueprint = factories.blueprint(author="boss", org="org-a")
    IdempotentRequest.objects.create(scope="org:org-a", key="stuck", fingerprint="0" * 64,
                                     created_at=timezone.now() - timedelta(minutes=3))  # never finished
    made = launch(api, blueprint, "stuck")
    assert made.status_code == 201, made.content
    assert "Idempotent-Replayed" not in made.headers
    assert launch(api, blueprint, "stuck").headers["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)
def test_a_message_and_a_run_now_sent_twice_with_one_key_are_sent_once(rig, settings):  # noqa: F811
    settings.AUTH_DISABLED = False
    factories.organization("testorg456", testuser123="member")
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    api = APIClient()
    agent_id = guild.spec["agents"][0]["id"]
    body = {"format": "text", "payload": {"text": "once"}, "agent": agent_id}
    answers = [api.post(f"/api/guilds/{guild.pk}/messages", body, format="json", HTTP_IDEMPOTENCY_KEY="m-1",
                        **factories.bearer("testuser123")) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert Run.objects.filter(guild=guild).count() == 1
    made = Schedule.objects.create(guild=guild, organization_id=guild.organization_id, cron="0 0 1 1 *",
                                   agent_id=agent_id, payload={"text": "scheduled"}, created_by=factories.user("testuser123"))
    fired = [api.post(f"/api/schedules/{made.pk}/run", HTTP_IDEMPOTENCY_KEY="r-1", **factories.bearer("testuser123"))
             for _ in range(2)]
    assert [f.status_code for f in fired] == [202, 202]
    assert fired[0].json() == fired[1].json()
    assert Run.objects.filter(guild=guild).count() == 2
    # Another manager of the guild with the same key and (empty) body is another request: not handed that answer.
    factories.organization("testorg456", overseer="admin")
    other = api.post(f"/api/schedules/{made.pk}/run", HTTP_IDEMPOTENCY_KEY="r-1", **factories.bearer("overseer"))
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert Run.objects.filter(guild=guild).count() == 2


@pytest.mark.services  # concurrent writers: PostgreSQL (SQLite takes one writer at a time)
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_launches_with_one_key_make_one_guild(people):
    assert connection.vendor == "postgresql"
    blueprint = factories.blueprint(author="boss", org="org-a",
                                    spec={**factories.ECHO_SPEC, "properties": {"execution_engine": "inprocess"}})
    try:
        answers = at_once(lambda: launch(APIClient(), blueprint, "together"))
        assert [a.status_code for a in answers] == [201, 201], [a.content for a in answers]
        assert answers[0].json() == answers[1].json()
        assert Guild.objects.count() == 1
        assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    finally:
        for guild_id in Guild.objects.values_list("pk", flat=True):
            runtime_loop.run(engine_named("inprocess").forget(guild_id))
