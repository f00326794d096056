"""A Celery pool process killed (kill -9) while it runs a handler: the message is handled again
elsewhere, promptly, and reaches the user exactly once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from guilds.models import GuildStatus
from messaging import topics as t
from messaging.message import AgentTag
from tests.runtime.conftest import GuildRig

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_message_loses_nothing_and_doubles_nothing(celery_workers, settings):
    settings.GUILDSITE_HEARTBEAT_INTERVAL = 0.2
    rig = GuildRig("celery")
    try:
        guild = rig.create({"name": "Counter", "agents": [
            {"name": "Counter", "class_name": "guilds.agents.probe.ProbeAgent"}]})
        rig.wait_status(guild, GuildStatus.RUNNING, timeout=20)
        user = rig.observe(guild, t.user_notifications("u1"))
        rig.join(guild, "u1", "Una")
        rig.wait_status(guild, GuildStatus.RUNNING)
        user.publish(t.user_inbox("u1"), {"text": "slow: 2"}, sender=AgentTag(id="u1"))
        time.sleep(1.0)  # the counter is asleep in its handler now, in one of the pool processes
        pool = [pid for process in celery_workers.processes for pid in celery_workers.children(process)]
        assert pool, "no pool processes to kill"
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        reply = user.wait(lambda m: m.payload.get("text", "").startswith("count:"), timeout=20,
                          what="the reply after the crash")
        redelivered_in = time.monotonic() - started
        time.sleep(2.0)  # a duplicate would have arrived by now
        replies = [m for m in user.messages if m.payload.get("text", "").startswith("count:")]
        assert [m.payload["text"] for m in replies] == ["count: 1"]  # handled to visible effect once
        assert reply.payload["text"] == "count: 1"
        assert redelivered_in < 15  # promptly: the lease (3 s), not a visibility timeout
    finally:
        rig.cleanup()
