"""Outbound webhooks on both engines: a run's end and a guild's status change reach the receivers that asked,
signed with Standard Webhooks headers (checked with the standardwebhooks verifier), retried with back-off,
dead-lettered after the last attempt, redelivered on request, and never holding up a run."""

from __future__ import annotations

import json
import threading

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from guilds.models import DeliveryStatus, GuildStatus, Run, RunStatus, WebhookDelivery
from tests import factories
from tests.runtime.conftest import PROBE, TEST_AGENTS, echo_spec, rig, wait_for  # noqa: F401 - shared fixtures
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    made = WebhookReceiver()
    yield made
    made.close()


@pytest.fixture
def running(rig, settings):  # noqa: F811 - pytest fixture injection
    settings.AUTH_DISABLED = False
    spec = echo_spec()
    spec["agents"].append({"name": "Probe", "class_name": PROBE, "additional_topics": ["probe_topic"],
                           "listen_to_default_topic": False})
    spec["agents"].append({"name": "Refuser", "class_name": f"{TEST_AGENTS}.FailsOnText",
                           "listen_to_default_topic": False})
    guild = rig.create(spec, user_id="ann")
    rig.wait_status(guild, GuildStatus.RUNNING)
    return guild


def subscribe(api, guild, url: str, events: list[str], **fields) -> dict:
    made = api.post(f"/api/guilds/{guild.pk}/webhooks", {"url": url, "events": events, **fields}, format="json",
                    **factories.bearer("ann"))
    assert made.status_code == 201, made.content
    return made.json()


def agent_id(guild, name: str) -> str:
    return next(agent["id"] for agent in guild.spec["agents"] if agent["name"] == name)


def run_of(api, guild, name: str, frame: dict) -> str:
    sent = api.post(f"/api/guilds/{guild.pk}/messages", {**frame, "agent": agent_id(guild, name)}, format="json",
                    **factories.bearer("ann"))
    assert sent.status_code == 202, sent.content
    return sent.json()["run_id"]


def verified(secret: str, request) -> dict:
    """The body, if the standardwebhooks verifier accepts its signature (it raises otherwise)."""
    return StandardWebhook(secret).verify(request.body, request.headers)


def test_a_finished_run_is_posted_signed_with_the_run_as_the_api_shows_it(api, running, receiver):
    hook = subscribe(api, running, receiver.url, ["run.succeeded", "run.failed"])
    run_id = run_of(api, running, "EchoAgent", {"format": "text", "payload": {"text": "hello"}})
    failed_id = run_of(api, running, "Refuser", {"format": "text", "payload": {"text": "boom"}})
    requests = receiver.wait_for(2)
    events = {event["data"]["id"]: event for event in (verified(hook["secret"], r) for r in requests)}
    succeeded, failed = events[run_id], events[failed_id]
    assert (succeeded["type"], failed["type"]) == ("run.succeeded", "run.failed")
    shown = api.get(f"/api/runs/{run_id}", **factories.bearer("ann")).json()
    assert succeeded["data"] == {key: shown[key] for key in succeeded["data"]}
    assert (succeeded["data"]["status"], failed["data"]["status"]) == (RunStatus.SUCCEEDED, RunStatus.FAILED)
    assert "boom" in failed["data"]["error"]
    for request in requests:
        assert request.headers["webhook-id"] == json.loads(request.body)["id"]
    with pytest.raises(Exception, match="signature"):
        StandardWebhook("whsec_" + "A" * 43).verify(requests[0].body, requests[0].headers)
    def recorded() -> list[dict]:
        log = api.get(f"/api/webhooks/{hook['id']}/deliveries", **factories.bearer("ann")).json()
        return log if len(log) == 2 and all(d["status"] != "pending" for d in log) else []

    log = wait_for(recorded, 10, "both deliveries recorded")
    assert sorted((d["status"], d["attempts"], d["last_status_code"]) for d in log) == [("succeeded", 1, 200)] * 2


def test_a_receiver_that_fails_twice_gets_the_same_event_a_third_time(api, running, receiver):
    receiver.statuses = [500, 503]
    hook = subscribe(api, running, receiver.url, ["run.succeeded"])
    run_of(api, running, "EchoAgent", {"format": "text", "payload": {"text": "hello"}})
    requests = receiver.wait_for(3)
    assert len({r.headers["webhook-id"] for r in requests}) == 1  # one event, three attempts
    assert len({r.body for r in requests}) == 1
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(webhook_id=hook["id"],
                                                               status=DeliveryStatus.SUCCEEDED).first(),
                        10, "the delivery to succeed")
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (3, 200, "")
    assert delivery.delivered_at is not None


def test_after_its_last_attempt_a_delivery_is_dead_and_redelivery_sends_it_again(api, running, receiver, settings):
    attempts = settings.GUILDSITE_WEBHOOK_MAX_ATTEMPTS
    receiver.statuses = [500] * attempts
    hook = subscribe(api, running, receiver.url, ["run.succeeded"])
    run_of(api, running, "EchoAgent", {"format": "text", "payload": {"text": "hello"}})
    receiver.wait_for(attempts)
    dead = wait_for(lambda: WebhookDelivery.objects.filter(webhook_id=hook["id"], status=DeliveryStatus.DEAD).first(),
                    30, "the delivery to be dead-lettered")
    assert (dead.attempts, dead.last_status_code, dead.next_attempt_at) == (attempts, 500, None)
    assert "500" in dead.last_error
    again = api.post(f"/api/webhook-deliveries/{dead.pk}/redeliver", **factories.bearer("ann"))
    assert again.status_code == 202, again.content
    requests = receiver.wait_for(attempts + 1)
    assert requests[-1].headers["webhook-id"] == dead.event_id
    assert requests[-1].body.decode() == dead.body
    redelivered = wait_for(lambda: WebhookDelivery.objects.filter(pk=again.json()["id"],
                                                                  status=DeliveryStatus.SUCCEEDED).first(),
                           10, "the redelivery to succeed")
    assert redelivered.redelivery_of_id == dead.pk


def test_a_guild_stopping_is_told_with_its_status(api, rig, running, receiver):  # noqa: F811
    hook = subscribe(api, running, receiver.url, ["guild.status_changed"])
    stopped = api.post(f"/api/guilds/{running.pk}/stop", **factories.bearer("ann"))
    assert stopped.status_code == 200, stopped.content
    told = wait_for(lambda: [event for event in (verified(hook["secret"], r) for r in receiver.received)
                             if event["data"]["status"] == GuildStatus.STOPPED], 15, "the STOPPED event")
    assert told[0]["type"] == "guild.status_changed"
    assert told[0]["data"]["id"] == running.pk


def test_only_the_events_and_the_agent_asked_for_are_sent(api, running, receiver):
    subscribe(api, running, receiver.url, ["run.succeeded"], agent="Probe")
    echo_run = run_of(api, running, "EchoAgent", {"format": "text", "payload": {"text": "not this one"}})
    wait_for(lambda: Run.objects.filter(pk=echo_run, status=RunStatus.SUCCEEDED).exists(), 15, "the echo's run")
    probe_run = run_of(api, running, "Probe", {"format": "text", "payload": {"text": "count"}})
    (request,) = receiver.wait_for(1)
    assert json.loads(request.body)["data"]["id"] == probe_run
    assert not WebhookDelivery.objects.filter(subject_id=echo_run).exists()


def test_a_receiver_that_hangs_does_not_hold_up_the_next_run(api, running, receiver):
    receiver.hold = threading.Event()
    subscribe(api, running, receiver.url, ["run.succeeded"])
    run_of(api, running, "EchoAgent", {"format": "text", "payload": {"text": "first"}})
    receiver.wait_for(1)  # the first event's receiver now hangs
    second = run_of(api, running, "EchoAgent", {"format": "text", "payload": {"text": "second"}})
    wait_for(lambda: Run.objects.filter(pk=second, status=RunStatus.SUCCEEDED).exists(), 15,
             "the second run to end while the receiver hangs")
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 0  # still hanging
    receiver.hold.set()
    wait_for(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2, 15,
             "both deliveries once released")
