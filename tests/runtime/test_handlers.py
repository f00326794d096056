"""Agent authoring rules that a user of the runtime relies on."""

from __future__ import annotations

import pytest

from guilds.runtime.agent import ANY_FORMAT, Agent, handles
from guilds.runtime.context import HandlerContext
from guilds.spec import SpecError, validate_guild_spec


class TwoHandlers(Agent):
    """Answers a text message from two handlers."""

    @handles("text")
    async def first(self, ctx: HandlerContext) -> None:
        await ctx.reply({"text": "from first"})

    @handles(ANY_FORMAT)
    async def second(self, ctx: HandlerContext) -> None:
        await ctx.reply({"text": "from second"})


def test_two_handlers_answering_one_message_both_get_through():
    from messaging.ids import derive_id

    assert derive_id(1 << 22, "agent/first", 1, 4) != derive_id(1 << 22, "agent/second", 1, 4)
    assert TwoHandlers.handlers_for("text", essential_topic=False) == ["first", "second"]


@pytest.mark.parametrize("agent", [
    {"id": "guild_manager", "name": "Impostor", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"},
    {"id": "upa-someone", "name": "Impostor", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"},
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
