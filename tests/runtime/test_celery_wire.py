"""The drain task the store script pushes is the message Celery itself sends: a Celery upgrade that
changes the message must fail here (guilds.engines.celery.wire)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

pytestmark = pytest.mark.services


def test_the_drain_task_the_store_script_enqueues_is_the_message_celery_itself_sends(settings):
    import redis

    from guilds.engines.celery.wire import drain_task_template
    from guilds.tasks import drain_agent
    from messaging.delivery.durable import AGENT_MARK, NAMESPACE_MARK, TASK_ID_MARK

    queue = f"gs-template-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        drain_agent.apply_async(("guild-1", "agent-1"), queue=queue)
        sent = json.loads(client.rpop(queue))
    finally:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()
    list_key, template = drain_task_template(queue)
    ours = json.loads(template.replace(TASK_ID_MARK, "task-1").replace(NAMESPACE_MARK, "guild-1")
                      .replace(AGENT_MARK, "agent-1"))

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
