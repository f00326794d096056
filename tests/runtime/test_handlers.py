"""Agent authoring rules that a user of the runtime relies on."""

from __future__ import annotations

import pytest

from guilds.models import GuildStatus
from guilds.spec import SpecError, validate_guild_spec
from messaging import topics as t
from tests.runtime.conftest import TEST_AGENTS, celery_workers, rig  # noqa: F401 - shared fixtures


def test_two_handlers_answering_one_message_both_get_through(rig):  # noqa: F811 - fixture injection
    guild = rig.create({"name": "Two", "agents": [{"name": "Two", "class_name": f"{TEST_AGENTS}.TwoHandlers"}]})
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = rig.observe(guild, t.agent_inbox("tester"))
    request = watcher.publish(t.DEFAULT_TOPIC, {"text": "hi"})
    for text in ("from first", "from second"):
        watcher.wait(lambda m, text=text: m.payload.get("text") == text and m.in_response_to == request.id,
                     what=f"the answer {text!r}")
    answers = [m for m in watcher.messages if m.in_response_to == request.id]
    assert sorted(m.payload["text"] for m in answers) == ["from first", "from second"]
    assert len({m.id for m in answers}) == 2  # two messages, not one id stored twice


@pytest.mark.parametrize("agent", [
    {"id": "guild_manager", "name": "Impostor", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"},
    {"id": "upa-someone", "name": "Impostor", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"},
    # A schedule's or a trigger's sender id: its messages would start runs owned by that automation's creator.
    {"id": "schedule-Ab12", "name": "Impostor", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"},
    {"id": "trigger-Ab12", "name": "Impostor", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"},
    {"name": "Manager", "class_name": "guilds.runtime.manager.GuildManagerAgent"},
    {"name": "Proxy", "class_name": "rustic_ai.core.agents.utils.user_proxy_agent.UserProxyAgent",
     "properties": {"user_id": "x"}},
])
def test_a_spec_cannot_take_the_guilds_own_ids_or_classes(agent):
    with pytest.raises(SpecError) as refused:
        validate_guild_spec({"name": "bad", "agents": [agent]})
    assert "reserved" in str(refused.value) or "started by the guild itself" in str(refused.value)


@pytest.mark.parametrize(("backend_config", "complaint"), [
    ({"redis_client": {"host": "10.0.0.5", "port": 6379}}, "not one this site allows"),
    ({"url": "redis://internal-cache:6380/0"}, "not one this site allows"),
    ({"redis_client": {"host": "localhost", "port": 6379}, "key_prefix": "x:"}, "the site's to set"),
])
def test_a_spec_may_name_only_a_redis_the_site_allows(backend_config, complaint):
    messaging = {"backend_module": "rustic_ai.redis.messaging.backend", "backend_class": "RedisMessagingBackend",
                 "backend_config": backend_config}
    with pytest.raises(SpecError) as refused:
        validate_guild_spec({"name": "g", "properties": {"messaging": messaging}, "agents": []})
    assert complaint in str(refused.value)
