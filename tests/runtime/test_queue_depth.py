"""Queue depth: how many messages wait for an agent, as a dashboard asks for it (guilds.queue_depth)."""

from __future__ import annotations

import time

import pytest

from guilds.models import Guild, GuildStatus
from guilds.queue_depth import queue_depths
from guilds.runtime import formats
from guilds.services import guild_create
from guilds.spec import validate_guild_spec
from messaging import topics as t
from tests import factories
from tests.runtime.conftest import PROBE, echo_spec, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PROBE_ID = "probe"
WAITING = 5  # messages sent to the probe while it is held


def with_probe() -> dict:
    spec = echo_spec()
    spec["agents"].append({"id": PROBE_ID, "name": "Probe", "class_name": PROBE, "additional_topics": ["probe_topic"],
                           "listen_to_default_topic": False})
    return spec


def _topics(message) -> list[str]:
    return [message.topics] if isinstance(message.topics, str) else list(message.topics or [])


def test_queue_depth_counts_what_waits_for_a_busy_agent_until_it_caught_up(rig):
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    probe, echo = (guild.id, PROBE_ID), (guild.id, guild.spec["agents"][0]["id"])
    unknown_agent, unknown_guild = (guild.id, "no-such-agent"), ("no-such-guild", PROBE_ID)
    # Every agent also takes what goes to the guild-wide topics (health checks, status, state): those wait too.
    guild_wide = [t.HEARTBEAT_TOPIC, t.GUILD_STATUS_TOPIC, t.STATE_TOPIC, t.agent_inbox(PROBE_ID)]
    watcher = rig.observe(guild, *guild_wide, t.agent_inbox("tester"))
    # Busy until the test says so: what comes after the hold waits.
    watcher.publish("probe_topic", {"seconds": 30, "until": "release"}, format="probe.hold")
    for number in range(WAITING):
        watcher.publish("probe_topic", {"text": f"waiting {number}"})

    def all_waiting() -> dict | None:
        depths = queue_depths([probe, echo, unknown_agent, unknown_guild])
        return depths if depths.get(probe, 0) >= WAITING else None

    depths = wait_for(all_waiting, what=f"{WAITING} messages waiting for the probe")
    asked_at_ms = time.time() * 1000
    assert depths[unknown_agent] == 0
    assert depths[unknown_guild] == 0
    # Besides the texts, only the hold (once it is being handled it no longer counts) and what went to the
    # guild-wide topics or the probe's inbox before the question can wait (health checks, and the status reports
    # of a guild turning WARNING while the probe is held); for the echo agent, only those not taken yet. Once a
    # health check sent after the question arrived, everything earlier has.
    wait_for(lambda: any(m.timestamp > asked_at_ms for m in watcher.of_format(formats.HEALTH_CHECK_REQUEST)),
             what="a health check sent after the question")
    sent_before = sum(1 for m in list(watcher.messages)
                      if m.timestamp <= asked_at_ms and set(_topics(m)) & set(guild_wide))
    assert WAITING <= depths[probe] <= WAITING + 1 + sent_before
    assert depths[echo] <= sent_before

    Guild.objects.filter(pk=guild.pk).update(state={"release": True})
    watcher.wait(lambda m: m.format == "probe.released", what="the hold released")
    wait_for(lambda: sum(m.format == "text" and m.payload["text"].startswith("count:") for m in list(watcher.messages))
             == WAITING, what="every waiting text answered")
    wait_for(lambda: queue_depths([probe]) == {probe: 0}, what="nothing waiting for the probe once it caught up")
    assert queue_depths([]) == {}


def test_an_unreachable_redis_leaves_the_agents_out_and_raises_nothing(transactional_db, settings, caplog):
    """Only the Celery engine asks Redis: its answer for a guild whose Redis is gone is no answer, logged."""
    settings.GUILDSITE_SPEC_REDIS_ALLOWED = [*settings.GUILDSITE_SPEC_REDIS_ALLOWED, "127.0.0.1:1"]
    spec = with_probe()
    spec["properties"] = {"execution_engine": "celery", "messaging": {
        "backend_module": "rustic_ai.redis.messaging.backend", "backend_class": "RedisMessagingBackend",
        "backend_config": {"redis_client": {"host": "127.0.0.1", "port": 1}}}}  # nothing listens there
    launcher = factories.member("testorg456", "testuser123")
    guild = guild_create(spec=validate_guild_spec(spec), name=spec["name"], launched_by=launcher,
                         organization=launcher.organizations.get(pk="testorg456"), launch=False)

    assert queue_depths([(guild.id, PROBE_ID), ("no-such-guild", PROBE_ID)]) == {("no-such-guild", PROBE_ID): 0}
    assert "queue depths unknown" in caplog.text
