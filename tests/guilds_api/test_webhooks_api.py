"""Outbound webhooks: GET|POST /api/guilds/{id}/webhooks, GET|PATCH|DELETE /api/webhooks/{id},
GET /api/webhooks/{id}/deliveries, POST /api/webhook-deliveries/{id}/redeliver, and the private-address guard."""

from __future__ import annotations

import pytest
from django.utils import timezone

from guilds import webhooks
from guilds.models import DeliveryStatus, GuildStatus, Webhook, WebhookDelivery
from guilds.runtime import loop as runtime_loop
from guilds.runtime import store
from tests import factories
from tests.runtime.conftest import wait_for
from tests.support.together import at_once
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(settings):
    settings.AUTH_DISABLED = False
    factories.organization("org-a", boss="admin", launcher="member", member="member")
    factories.organization("org-b", stranger="admin")


@pytest.fixture
def guild(people):
    return factories.guild("G", org="org-a", user="launcher", status=GuildStatus.RUNNING)


@pytest.fixture
def receiver():
    made = WebhookReceiver()
    yield made
    made.close()


def create(api, guild, who: str = "launcher", **body):
    return api.post(f"/api/guilds/{guild.pk}/webhooks",
                    {"url": "http://127.0.0.1:9/hook", "events": ["run.succeeded"], **body}, format="json",
                    **factories.bearer(who))


def test_a_webhook_is_made_with_its_secret_shown_once(api, guild):
    response = create(api, guild, events=["run.failed", "run.succeeded", "run.failed"], agent="EchoAgent")
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["secret"].startswith("whsec_")
    assert (made["events"], made["agent"], made["enabled"]) == (["run.failed", "run.succeeded"], "EchoAgent", True)
    assert made["secret"] not in Webhook.objects.get(pk=made["id"]).sealed_secret
    for read in (api.get(f"/api/webhooks/{made['id']}", **factories.bearer("launcher")).json(),
                 api.get(f"/api/guilds/{guild.pk}/webhooks", **factories.bearer("boss")).json()[0]):
        assert "secret" not in read
        assert made["secret"] not in str(read)
    changed = api.patch(f"/api/webhooks/{made['id']}", {"enabled": False, "agent": None}, format="json",
                        **factories.bearer("boss"))
    assert (changed.json()["enabled"], changed.json()["agent"]) == (False, None)
    assert api.delete(f"/api/webhooks/{made['id']}", **factories.bearer("launcher")).status_code == 204
    assert api.get(f"/api/webhooks/{made['id']}", **factories.bearer("launcher")).status_code == 404


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"events": []}, "events", "at least 1"),
    ({"events": ["run.started"]}, "events", "run.started"),
    ({"agent": "NoSuchAgent"}, "agent", "not the name"),
    ({"url": "ftp://example.com/hook"}, "url", "http"),
    ({"url": "http://example.com/" + "x" * 2000}, "url", "2000"),
    ({"url": "http://example.com/caf\u00e9"}, "url", "ASCII"),
])
def test_a_bad_field_is_a_400_naming_it(api, guild, problem, body, field, says):
    body = problem(create(api, guild, **body), 400)
    assert says in " ".join(body["errors"][field]), body


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://localhost/hook", "http://10.1.2.3/hook",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/hook",
                                 "http://[::ffff:192.168.0.1]/hook", "http://0.0.0.0/hook",
                                 "http://[::127.0.0.1]/hook", "http://[64:ff9b::a9fe:a9fe]/hook",
                                 "http://[2002:a9fe:a9fe::]/hook"])
def test_a_private_receiver_is_refused(api, guild, problem, settings, url):
    settings.GUILDSITE_WEBHOOK_ALLOW_PRIVATE = False
    body = problem(create(api, guild, url=url), 400)
    assert "private" in " ".join(body["errors"]["url"]), body


def test_a_receiver_that_turns_private_after_creation_is_not_connected_to(api, guild, settings, receiver):
    made = create(api, guild, url=receiver.url, events=["guild.status_changed"]).json()
    settings.GUILDSITE_WEBHOOK_ALLOW_PRIVATE = False  # the name now points somewhere private: checked per connection
    runtime_loop.run(store.guild_status_set(guild.pk, GuildStatus.WARNING, "an agent is late"))
    dead = wait_for(lambda: WebhookDelivery.objects.filter(webhook_id=made["id"], status=DeliveryStatus.DEAD).first(),
                    10, "the delivery to be refused")
    assert "private" in dead.last_error
    assert (dead.attempts, dead.last_status_code) == (1, None)
    assert receiver.received == []


def test_who_may_manage(api, guild, problem):
    made = create(api, guild).json()
    problem(create(api, guild, who="member"), 403)
    problem(api.get(f"/api/webhooks/{made['id']}/deliveries", **factories.bearer("member")), 403)
    for call in (lambda: api.get(f"/api/webhooks/{made['id']}", **factories.bearer("stranger")),
                 lambda: api.get(f"/api/webhooks/{made['id']}/deliveries", **factories.bearer("stranger")),
                 lambda: api.get(f"/api/guilds/{guild.pk}/webhooks", **factories.bearer("stranger")),
                 lambda: api.delete(f"/api/webhooks/{made['id']}", **factories.bearer("stranger")),
                 lambda: create(api, guild, who="stranger")):
        problem(call(), 404)
    problem(api.post("/api/webhook-deliveries/no-such-delivery/redeliver", **factories.bearer("boss")), 404)


def test_a_guild_has_at_most_its_share_of_webhooks(api, guild, problem, settings):
    settings.GUILDSITE_WEBHOOKS_PER_GUILD = 1
    assert create(api, guild).status_code == 201
    problem(create(api, guild), 409, "too_many_webhooks")


def test_a_delivery_still_being_tried_is_not_redelivered_and_anothers_is_not_found(api, guild, problem, settings,
                                                                                    receiver):
    receiver.statuses = [500] * 50
    settings.GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS = 60  # its next attempt is a minute away
    made = create(api, guild, url=receiver.url, events=["guild.status_changed"]).json()
    runtime_loop.run(store.guild_status_set(guild.pk, GuildStatus.WARNING, "an agent is late"))
    receiver.wait_for(1)
    pending = wait_for(lambda: WebhookDelivery.objects.filter(webhook_id=made["id"], attempts=1).first(), 10,
                       "the first attempt recorded")
    assert pending.status == DeliveryStatus.PENDING
    problem(api.post(f"/api/webhook-deliveries/{pending.pk}/redeliver", **factories.bearer("launcher")), 409,
            "delivery_pending")
    problem(api.post(f"/api/webhook-deliveries/{pending.pk}/redeliver", **factories.bearer("stranger")), 404)
    log = api.get(f"/api/webhooks/{made['id']}/deliveries", **factories.bearer("launcher")).json()
    assert [(d["event_type"], d["status"], d["attempts"], d["last_status_code"]) for d in log] == [
        ("guild.status_changed", "pending", 1, 500)]
    assert log[0]["next_attempt_at"] is not None


def test_a_paused_webhook_is_told_nothing_new_and_its_waiting_deliveries_go_once_it_is_resumed(api, guild, receiver):
    made = create(api, guild, url=receiver.url, events=["guild.status_changed"]).json()
    api.patch(f"/api/webhooks/{made['id']}", {"enabled": False}, format="json", **factories.bearer("launcher"))
    runtime_loop.run(store.guild_status_set(guild.pk, GuildStatus.WARNING, "an agent is late"))
    assert not WebhookDelivery.objects.filter(webhook_id=made["id"]).exists()  # paused: not told
    waiting = WebhookDelivery.objects.create(  # one that was due when it was paused
        webhook_id=made["id"], event_type="guild.status_changed", event_id="msg_waiting", subject_id=guild.pk,
        snapshot={"status": "WARNING"}, next_attempt_at=timezone.now())
    assert webhooks.attempt(waiting.pk) is None
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts) == (DeliveryStatus.PENDING, 0)
    resumed = api.patch(f"/api/webhooks/{made['id']}", {"enabled": True}, format="json", **factories.bearer("launcher"))
    assert resumed.status_code == 200, resumed.content
    (request,) = receiver.wait_for(1)
    assert request.headers["webhook-id"] == "msg_waiting"
    wait_for(lambda: WebhookDelivery.objects.filter(pk=waiting.pk, status=DeliveryStatus.SUCCEEDED).exists(), 10,
             "the delivery to succeed")


def test_two_senders_at_once_make_one_attempt(api, guild, receiver):
    made = create(api, guild, url=receiver.url, events=["guild.status_changed"]).json()
    due = WebhookDelivery.objects.create(webhook_id=made["id"], event_type="guild.status_changed", event_id="msg_once",
                                         subject_id=guild.pk, snapshot={"status": "WARNING"},
                                         next_attempt_at=timezone.now())
    outcomes = at_once(lambda: webhooks.attempt(due.pk), count=4)
    assert outcomes == [None] * 4  # one succeeded (no next attempt), three found it claimed
    assert len(receiver.wait_for(1)) == 1
    due.refresh_from_db()
    assert (due.status, due.attempts) == (DeliveryStatus.SUCCEEDED, 1)
    assert len(receiver.received) == 1
