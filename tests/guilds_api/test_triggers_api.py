"""Triggers: GET|POST /api/guilds/{id}/triggers, GET|PATCH|DELETE /api/triggers/{id},
POST /api/triggers/{id}/rotate-secret, and the signed POST /api/triggers/{id}/events (seed 004)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from guilds.models import Guild, GuildStatus, Run, RunStatus, RunTrigger, Trigger
from tests import factories
from tests.runtime.conftest import celery_workers, echo_spec, rig, wait_for  # noqa: F401 - shared fixtures
from tests.support.signing import as_body, zerg_headers

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(settings):
    settings.AUTH_DISABLED = False
    factories.organization("org-a", boss="admin", launcher="member", member="member")
    factories.organization("org-b", stranger="admin")


@pytest.fixture
def guild(people):
    return factories.guild("G", org="org-a", user="launcher", status=GuildStatus.RUNNING)


def create(api, guild, who: str = "launcher", **body):
    return api.post(f"/api/guilds/{guild.pk}/triggers", {"agent": "EchoAgent", **body}, format="json",
                    **factories.bearer(who))


def send(api, trigger_id: str, body: bytes, headers: dict[str, str]):
    return api.generic("POST", f"/api/triggers/{trigger_id}/events", body, content_type="application/json",
                       **headers)


def test_a_trigger_is_made_with_its_secret_shown_once(api, guild):
    response = create(api, guild, prompt_template="New order: {payload}")
    assert response.status_code == 201, response.content
    made = response.json()
    assert len(made["secret"]) == 64
    assert (made["agent"], made["format"], made["enabled"], made["use_site_secret"]) == (
        "EchoAgent", "generic_json", True, False)
    assert made["events_url"] == f"/api/triggers/{made['id']}/events"
    stored = Trigger.objects.get(pk=made["id"])
    assert made["secret"] not in stored.sealed_secret  # kept sealed, not as itself
    for read in (api.get(f"/api/triggers/{made['id']}", **factories.bearer("launcher")).json(),
                 api.get(f"/api/guilds/{guild.pk}/triggers", **factories.bearer("boss")).json()[0]):
        assert "secret" not in read
        assert made["secret"] not in str(read)
        assert read["prompt_template"] == "New order: {payload}"


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"agent": "NoSuchAgent"}, "agent", "not the name"),
    ({"format": "xml"}, "format", "xml"),
    ({"use_site_secret": True}, "use_site_secret", "TRIGGER_SIGNING_SECRET"),
    ({"prompt_template": "x" * 8001}, "prompt_template", "8000"),
])
def test_a_bad_field_is_a_400_naming_it(api, guild, problem, body, field, says):
    body = problem(create(api, guild, **body), 400)
    assert says in " ".join(body["errors"][field]), body


def test_who_may_manage(api, guild, problem):
    made = create(api, guild).json()
    problem(create(api, guild, who="member"), 403)
    problem(api.get(f"/api/triggers/{made['id']}", **factories.bearer("member")), 403)
    problem(api.post(f"/api/triggers/{made['id']}/rotate-secret", **factories.bearer("member")), 403)
    for call in (lambda: api.get(f"/api/triggers/{made['id']}", **factories.bearer("stranger")),
                 lambda: api.get(f"/api/guilds/{guild.pk}/triggers", **factories.bearer("stranger")),
                 lambda: api.patch(f"/api/triggers/{made['id']}", {"enabled": False}, format="json",
                                   **factories.bearer("stranger")),
                 lambda: api.post(f"/api/triggers/{made['id']}/rotate-secret", **factories.bearer("stranger")),
                 lambda: create(api, guild, who="stranger")):
        problem(call(), 404)
    assert api.delete(f"/api/triggers/{made['id']}", **factories.bearer("boss")).status_code == 204
    problem(api.get(f"/api/triggers/{made['id']}", **factories.bearer("boss")), 404)


def test_a_guild_has_at_most_its_share_of_triggers(api, guild, problem, settings):
    settings.GUILDSITE_TRIGGERS_PER_GUILD = 1
    assert create(api, guild).status_code == 201
    problem(create(api, guild), 409, "too_many_triggers")


def test_each_refusal_in_its_order(api, guild, problem, settings):
    settings.GUILDSITE_TRIGGER_MAX_BYTES = 2048
    made = create(api, guild).json()
    trigger_id, secret = made["id"], made["secret"]
    body = as_body({"order": 42})
    problem(send(api, trigger_id, b"[" + b"1," * 1100 + b"1]", zerg_headers(secret, b"{}")), 413, "too_large")
    problem(send(api, "no-such-trigger", body, zerg_headers(secret, body)), 404, "not_found")
    for timestamp in ("soon", "--1", "\u00b2", "1" * 30, ""):
        problem(send(api, trigger_id, body, {"HTTP_X_ZERG_TIMESTAMP": timestamp, "HTTP_X_ZERG_SIGNATURE": "00"}), 400,
                "invalid_timestamp")
    stale = zerg_headers(secret, body, timestamp=int(time.time()) - 301)
    problem(send(api, trigger_id, body, stale), 400, "invalid_timestamp")
    problem(send(api, trigger_id, body, zerg_headers("not-its-secret", body)), 403, "invalid_signature")
    problem(send(api, trigger_id, as_body({"order": 43}), zerg_headers(secret, body)), 403, "invalid_signature")
    problem(send(api, trigger_id, body, {**zerg_headers(secret, body), "HTTP_X_ZERG_SIGNATURE": "é" * 64}), 403,
            "invalid_signature")
    not_json = b"order=42"
    problem(send(api, trigger_id, not_json, zerg_headers(secret, not_json)), 400, "parse_error")
    api.patch(f"/api/triggers/{trigger_id}", {"enabled": False}, format="json", **factories.bearer("launcher"))
    problem(send(api, trigger_id, body, zerg_headers(secret, body)), 403, "trigger_disabled")
    problem(send(api, trigger_id, body, zerg_headers("not-its-secret", body)), 403, "invalid_signature")
    api.patch(f"/api/triggers/{trigger_id}", {"enabled": True}, format="json", **factories.bearer("launcher"))
    Guild.objects.filter(pk=guild.pk).update(status=GuildStatus.STARTING)
    refused = send(api, trigger_id, body, zerg_headers(secret, body))
    problem(refused, 409, "guild_not_ready")
    assert refused["Retry-After"] == "5"
    Guild.objects.filter(pk=guild.pk).update(status=GuildStatus.STOPPED)
    problem(send(api, trigger_id, body, zerg_headers(secret, body)), 409, "guild_stopped")


def test_over_its_rate_a_trigger_answers_429_with_retry_after(api, guild, problem, settings):
    settings.GUILDSITE_TRIGGER_RATE_PER_MINUTE = 2
    made = create(api, guild).json()
    body = as_body({"n": 1})
    Guild.objects.filter(pk=guild.pk).update(status=GuildStatus.STARTING)  # counted, then refused, not sent
    for _ in range(2):
        problem(send(api, made["id"], body, zerg_headers(made["secret"], body)), 409, "guild_not_ready")
    refused = send(api, made["id"], body, zerg_headers(made["secret"], body))
    problem(refused, 429, "throttled")
    assert 1 <= int(refused["Retry-After"]) <= 120


def test_the_signature_is_all_the_authentication_and_no_session_or_csrf_is_asked(guild, client, problem):
    client.force_login(factories.user("launcher"))
    problem(client.post("/api/triggers/whatever/events", b"{}", content_type="application/json",
                        **zerg_headers("x", b"{}")), 404, "not_found")


@pytest.mark.django_db(transaction=True)
def test_an_event_reaches_its_agent_as_a_run_with_either_signature_and_once(api, rig, settings, problem):  # noqa: F811
    settings.AUTH_DISABLED = False
    factories.organization("testorg456", testuser123="member")
    running = rig.create(echo_spec())
    rig.wait_status(running, GuildStatus.RUNNING)
    made = create(api, running, who="testuser123", prompt_template="Order in: {payload}").json()
    raw = b'{"total": 12.5, "order": "A-1"}'  # spaces and key order as the sender wrote them
    headers = zerg_headers(made["secret"], raw)
    accepted = send(api, made["id"], raw, headers)
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["status"] == "accepted"
    run = wait_for(lambda: Run.objects.filter(pk=accepted.json()["run_id"], status=RunStatus.SUCCEEDED).first(), 15,
                   "the trigger's run to end")
    assert (run.trigger, run.requester) == (RunTrigger.WEBHOOK, f"trigger-{made['id']}")
    assert run.agent_id == running.spec["agents"][0]["id"]
    problem(send(api, made["id"], raw, headers), 409, "replayed")  # the same event again
    zerg = send(api, made["id"], raw, zerg_headers(made["secret"], raw, zerg_form=True,
                                                   timestamp=int(headers["HTTP_X_ZERG_TIMESTAMP"]) + 1))
    assert zerg.status_code == 202, zerg.content  # zerg's re-serialised form verifies too
    canonical = b'{"order":"A-1","total":12.5}'  # what zerg signed, sent as such: the same event again
    problem(send(api, made["id"], canonical, {**zerg_headers(made["secret"], canonical),
                                             "HTTP_X_ZERG_TIMESTAMP": str(int(headers["HTTP_X_ZERG_TIMESTAMP"]) + 1),
                                             "HTTP_X_ZERG_SIGNATURE": zerg_headers(
                                                 made["secret"], raw, zerg_form=True,
                                                 timestamp=int(headers["HTTP_X_ZERG_TIMESTAMP"]) + 1)[
                                                 "HTTP_X_ZERG_SIGNATURE"]}), 409, "replayed")
    assert Trigger.objects.get(pk=made["id"]).last_event_at is not None


def test_a_rotated_secret_verifies_beside_the_old_one_for_the_grace_period(api, guild, problem, settings):
    made = create(api, guild).json()
    rotated = api.post(f"/api/triggers/{made['id']}/rotate-secret", **factories.bearer("boss"))
    assert rotated.status_code == 200, rotated.content
    new_secret = rotated.json()["secret"]
    assert new_secret != made["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    not_json = b"not json"  # verified, then refused as not JSON: nothing is sent
    problem(send(api, made["id"], not_json, zerg_headers(new_secret, not_json)), 400, "parse_error")
    problem(send(api, made["id"], b"still not", zerg_headers(made["secret"], b"still not")), 400, "parse_error")
    Trigger.objects.filter(pk=made["id"]).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    problem(send(api, made["id"], b"again not", zerg_headers(made["secret"], b"again not")), 403, "invalid_signature")


def test_a_trigger_on_the_site_secret_verifies_with_it_alone(api, guild, problem, settings):
    settings.TRIGGER_SIGNING_SECRET = "site-wide-hex-secret"
    made = create(api, guild, use_site_secret=True).json()
    problem(send(api, made["id"], b"x", zerg_headers(made["secret"], b"x")), 403, "invalid_signature")
    problem(send(api, made["id"], b"x", zerg_headers("site-wide-hex-secret", b"x")), 400, "parse_error")
