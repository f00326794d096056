"""The Celery engine's own parts that the engine-neutral runtime tests do not single out."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

pytestmark = pytest.mark.services


def test_the_drain_task_the_store_script_enqueues_is_the_message_celery_itself_sends(settings):
    # The store script pushes drain tasks itself; a Celery upgrade that changes the message must fail here.
    import redis

    from guilds.engines.celery import _drain_task_template
    from guilds.tasks import drain_agent
    from messaging import durable

    queue = f"gs-template-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        drain_agent.apply_async(("guild-1", "agent-1"), queue=queue)
        sent = json.loads(client.rpop(queue))
    finally:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()
    list_key, template = _drain_task_template(queue)
    ours = json.loads(template.replace(durable.TASK_ID_MARK, "task-1").replace(durable.NAMESPACE_MARK, "guild-1")
                      .replace(durable.AGENT_MARK, "agent-1"))

    assert list_key == queue
    assert ours.keys() == sent.keys()
    assert ours["headers"].keys() == sent["headers"].keys()
    for name in ours["headers"].keys() - {"id", "root_id", "origin"}:
        assert ours["headers"][name] == sent["headers"][name], name
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == "task-1"
    assert ours["properties"].keys() == sent["properties"].keys() - {"body_encoding"}
    assert ours["properties"]["delivery_info"] == sent["properties"]["delivery_info"]
    sent_body = sent["body"]
    if sent["properties"].get("body_encoding") == "base64":
        sent_body = base64.b64decode(sent_body).decode()
    assert json.loads(ours["body"]) == json.loads(sent_body)


@pytest.mark.parametrize("rig", ["celery"], indirect=True)
def test_messages_for_an_agent_that_no_longer_runs_are_dropped_and_the_worker_goes_on(rig):
    # The gap a stop leaves: the agent's record says stopped while its subscription still stands.
    from guilds.models import GuildAgent, GuildStatus
    from guilds.runtime import loop as runtime_loop
    from messaging import topics as t

    from .conftest import echo_spec, wait_for

    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    echo = GuildAgent.objects.get(guild=guild, class_name__endswith="EchoAgent")
    watcher = rig.observe(guild, t.agent_inbox("tester"))
    watcher.publish("echo_topic", {"text": "before"})
    watcher.wait(lambda m: m.payload.get("text") == "Echo: before", what="the echo while it runs")

    GuildAgent.objects.filter(pk=echo.pk).update(status="stopped")
    celery_guild = runtime_loop.run(rig.engine.guild(guild.id))
    inbox = runtime_loop.run(celery_guild.inbox(echo.agent_id))
    runtime_loop.run(inbox.bump_version())  # as a stop does: workers reload the agent
    watcher.publish("echo_topic", {"text": "after"})
    wait_for(lambda: runtime_loop.run(inbox.size()) == 0, what="the waiting message dropped")
    assert not [m for m in watcher.messages if m.payload.get("text") == "Echo: after"]
