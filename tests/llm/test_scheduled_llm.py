"""A schedule that sends to an LLM agent: its answer goes to a thread of the schedule's creator's, and its run is
the trigger `schedule`'s, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guilds import schedules
from guilds.models import GuildStatus, Run, RunStatus, RunTrigger, Schedule, Thread
from tests import factories
from tests.llm.conftest import llm_spec
from tests.runtime.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_scheduled_question_is_answered_into_its_creators_thread(rig, fake_llm, llm_settings):
    guild = rig.create(llm_spec(fake_llm.base_url))
    rig.wait_status(guild, GuildStatus.RUNNING)
    due = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    made = Schedule.objects.create(guild=guild, organization_id=guild.organization_id, cron="0 9 * * *",
                                   agent_id=guild.spec["agents"][0]["id"], payload={"text": "What is on today?"},
                                   name="Standup", created_by=factories.user("testuser123"), next_run_at=due)
    assert [f.schedule_id for f in schedules.tick(due + timedelta(seconds=2))] == [made.pk]
    run = wait_for(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).first(), 20, "the answer")
    assert (run.trigger, run.requester) == (RunTrigger.SCHEDULE, made.sender_id)
    thread = Thread.objects.get(pk=run.thread_id)
    assert thread.user.username == "testuser123"
    assert [(m.role, m.content) for m in thread.messages.order_by("id")] == [
        ("user", "What is on today?"), ("assistant", "Hello from the fake model.")]
