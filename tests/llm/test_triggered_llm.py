"""A trigger's event for an LLM agent: its prompt template filled with the event's JSON, answered into a thread of
the trigger's creator's, its run the trigger `webhook`'s, on both engines."""

from __future__ import annotations

import pytest

from guilds import triggers
from guilds.models import GuildStatus, Run, RunStatus, RunTrigger, Thread, Trigger
from tests import factories
from tests.llm.conftest import llm_spec
from tests.runtime.conftest import wait_for
from tests.support.signing import zerg_headers

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_is_asked_through_its_template_and_answered_into_its_creators_thread(rig, fake_llm, llm_settings,
                                                                                     client):
    guild = rig.create(llm_spec(fake_llm.base_url))
    rig.wait_status(guild, GuildStatus.RUNNING)
    made = Trigger(guild=guild, organization_id=guild.organization_id, agent_id=guild.spec["agents"][0]["id"],
                   prompt_template="A new order came in: {payload}. Thank the customer.",
                   created_by=factories.user("testuser123"))
    secret = triggers.trigger_create(trigger=made)
    body = b'{"customer": "Ada", "items": 3}'
    accepted = client.generic("POST", f"/api/triggers/{made.pk}/events", body, content_type="application/json",
                              **zerg_headers(secret, body))
    assert accepted.status_code == 202, accepted.content
    run = wait_for(lambda: Run.objects.filter(pk=accepted.json()["run_id"], status=RunStatus.SUCCEEDED).first(), 20,
                   "the answer")
    assert (run.trigger, run.requester) == (RunTrigger.WEBHOOK, made.sender_id)
    thread = Thread.objects.get(pk=run.thread_id)
    assert thread.user.username == "testuser123"
    asked = 'A new order came in: {"customer": "Ada", "items": 3}. Thank the customer.'
    assert [(m.role, m.content) for m in thread.messages.order_by("id")] == [
        ("user", asked), ("assistant", "Hello from the fake model.")]
    assert fake_llm.requests[-1]["body"]["messages"][-1] == {"role": "user", "content": asked}
