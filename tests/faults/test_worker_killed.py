"""A Celery pool process killed (kill -9) while it runs a handler: the message is handled again
elsewhere and takes effect exactly once."""

from __future__ import annotations

import os
import signal

import pytest

from guilds.models import GuildStatus
from messaging import topics as t
from messaging.message import AgentTag
from tests.runtime.conftest import GuildRig

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

RESTARTED = "held by this slot's previous process start again"  # guilds.engines.celery.lane


def test_a_worker_killed_mid_message_loses_nothing_and_doubles_nothing(celery_workers, settings):
    settings.GUILDSITE_HEARTBEAT_INTERVAL = 0.2
    rig = GuildRig("celery")
    try:
        guild = rig.create({"name": "Counter", "agents": [
            {"name": "Counter", "class_name": "guilds.agents.probe.ProbeAgent"}]})
        rig.wait_status(guild, GuildStatus.RUNNING, timeout=20)
        user = rig.observe(guild, t.user_notifications("u1"))
        seen = rig.observe(guild, "probe_seen")
        rig.join(guild, "u1", "Una")
        rig.wait_status(guild, GuildStatus.RUNNING)
        user.publish(t.user_inbox("u1"), {"text": "slow: 5"}, sender=AgentTag(id="u1"))
        # The counter says it started; it counts only after its wait: the kill lands inside the handler.
        seen.wait(lambda m: m.format == "probe.started", timeout=20, what="the handler to start")
        pool = [pid for process in celery_workers.processes for pid in celery_workers.children(process)]
        assert pool, "no pool processes to kill"
        restarted_before = celery_workers.log().count(RESTARTED)
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        # The killed process's drain starts again in its replacement, from the drain lane, as soon as the
        # agent's lease (3 s) lapses: well before the wake flag lapses and beat's sweep would wake it (10 s).
        user.wait(lambda m: m.payload.get("text") == "count: 1", timeout=30, what="the reply after the crash")
        assert celery_workers.log().count(RESTARTED) > restarted_before
        # Exactly once in effect: had the message been handled twice, the next count would be 3.
        user.publish(t.user_inbox("u1"), {"text": "again"}, sender=AgentTag(id="u1"))
        user.wait(lambda m: m.payload.get("text", "").startswith("count: ") and m.payload["text"] != "count: 1",
                  timeout=30, what="the next reply")
        counts = [m.payload["text"] for m in user.messages if m.payload.get("text", "").startswith("count: ")]
        assert counts == ["count: 1", "count: 2"]
    finally:
        rig.cleanup()
