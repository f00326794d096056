"""Seed 000's catalog objects, written once: the demo data loads them and the API docs show them."""

from __future__ import annotations

import copy
from typing import Any

# The original system's name for guildsite's EchoAgent (an alias in guilds.runtime.registry).
SEED_ECHO_AGENT = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"

SEED_CATEGORY = {"name": "Testing", "description": "Category for integration testing blueprints"}

_SEED_AGENTS: list[dict[str, Any]] = [
    {
        "name": "EchoAgent",
        "description": "Agent that echoes messages",
        "class_name": SEED_ECHO_AGENT,
        "additional_topics": ["echo_topic"],
        "listen_to_default_topic": False,
    }
]


def demo_blueprint_spec() -> dict[str, Any]:
    """The seed's EchoTestBlueprint spec without `messaging` and `execution_engine`: it runs on the
    site's defaults, so it works with nothing else installed."""
    return {
        "name": "EchoTestBlueprint",
        "description": "Echo agent for integration testing",
        "agents": copy.deepcopy(_SEED_AGENTS),
    }


# The LLM agent (guilds.agents.llm) and a blueprint to chat with it on the site's provider (LLM_BASE_URL,
# LLM_MODEL, OPENAI_API_KEY): no base_url or key in the spec, so it follows the site's settings.
LLM_AGENT = "guilds.agents.llm.LLMAgent"


def llm_blueprint_spec() -> dict[str, Any]:
    return {
        "name": "LLMChatBlueprint",
        "description": "Chat with a language model (the site's LLM_BASE_URL and LLM_MODEL)",
        "agents": [{"name": "Assistant", "description": "Answers with a language model", "class_name": LLM_AGENT,
                    "properties": {"system_prompt": "You are a helpful assistant. Answer briefly.",
                                   "history_limit": 20}}],
    }


# The seed's request body, for the API docs' example (category_id is whatever the category POST returned).
SEED_BLUEPRINT_REQUEST: dict[str, Any] = {
    "name": "EchoTestBlueprint",
    "description": "Echo agent for integration testing",
    "version": "v1",
    "author_id": "test_author",
    "organization_id": "testorg456",
    "exposure": "private",
    "category_id": None,
    "spec": {
        **demo_blueprint_spec(),
        "properties": {
            "messaging": {
                "backend_module": "rustic_ai.redis.messaging.backend",
                "backend_class": "RedisMessagingBackend",
                "backend_config": {"redis_client": {"host": "localhost", "port": 6379}},
            },
            "execution_engine": "rustic_ai.core.guild.execution.sync.sync_exec_engine.SyncExecutionEngine",
        },
    },
}
