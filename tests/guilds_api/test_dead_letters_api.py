"""GET|DELETE /api/guilds/{id}/dead-letters..., POST .../redeliver: the guild's dead letters, for its launcher
and its organisation's admins (the runtime's side is tests/runtime/test_dead_letters.py)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from guilds.models import DeadLetter
from guilds.runtime.dead_letters import body_of
from messaging.message import Message
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _auth_on(settings):
    settings.AUTH_DISABLED = False


@pytest.fixture
def guild():
    factories.organization("org-d", boss="admin", launcher="member", other="member", watcher="viewer")
    factories.organization("org-x", stranger="admin")
    return factories.guild(org="org-d", user="launcher")


def letter(guild, message_id: int = 387898424392371953, body: dict | None = None) -> DeadLetter:
    return DeadLetter.objects.create(guild=guild, agent_id="echo", message_id=message_id,
                                     message=body if body is not None else {"undecodable": "junk"},
                                     reason="it cannot be decoded", attempts=5, failed_at=timezone.now())


@pytest.mark.parametrize(("who", "status"), [("launcher", 200), ("boss", 200), ("other", 403), ("watcher", 403),
                                             ("stranger", 404)])
def test_dead_letters_are_for_the_launcher_and_admins(api, guild, who, status):
    letter(guild)

    response = api.get(f"/api/guilds/{guild.pk}/dead-letters", **factories.bearer(who))

    assert response.status_code == status, response.content
    if status == 200:
        assert response.json() == [{"message_id": "387898424392371953", "agent_id": "echo",
                                    "message": {"undecodable": "junk"}, "reason": "it cannot be decoded",
                                    "attempts": 5, "failed_at": response.json()[0]["failed_at"]}]


def test_a_dead_letter_is_deleted(api, guild, problem):
    kept, dropped = letter(guild, 1), letter(guild, 2)

    assert api.delete(f"/api/guilds/{guild.pk}/dead-letters/2", **factories.bearer("launcher")).status_code == 204

    assert list(DeadLetter.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not DeadLetter.objects.filter(pk=dropped.pk).exists()
    problem(api.delete(f"/api/guilds/{guild.pk}/dead-letters/2", **factories.bearer("launcher")), 404)
    problem(api.delete(f"/api/guilds/{guild.pk}/dead-letters/not-a-number", **factories.bearer("launcher")), 404)


def test_what_cannot_be_decoded_cannot_be_redelivered(api, guild, problem):
    letter(guild, 7)

    body = problem(api.post(f"/api/guilds/{guild.pk}/dead-letters/7/redeliver", **factories.bearer("boss")), 409)

    assert "cannot be decoded" in body["detail"]
    assert DeadLetter.objects.filter(message_id=7).exists()  # kept for a look


def test_a_message_for_an_agent_that_does_not_run_waits_for_a_relaunch(api, guild, problem):
    message = Message.create(sender={"id": "u1", "name": "U"}, topics="echo_topic", payload={"text": "hi"})
    letter(guild, message.id, body=body_of(message))

    refused = problem(api.post(f"/api/guilds/{guild.pk}/dead-letters/{message.id}/redeliver",
                               **factories.bearer("launcher")), 409)

    assert "relaunch" in refused["detail"]
