"""Seed 000's Phase 1 and 2.1 request bodies, verbatim, and the objects they create."""

from __future__ import annotations

import copy
from typing import Any

import pytest

SEED_AGENT_BODY: dict[str, Any] = {
    "qualified_class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
    "description": "Agent that echoes messages back to the sender",
    "properties_schema": {},
    "dependencies": [],
}

SEED_CATEGORY_BODY: dict[str, Any] = {
    "name": "Testing",
    "description": "Category for integration testing blueprints",
}

SEED_BLUEPRINT_BODY: dict[str, Any] = {
    "name": "EchoTestBlueprint",
    "description": "Echo agent for integration testing",
    "version": "v1",
    "author_id": "test_author",
    "organization_id": "testorg456",
    "exposure": "private",
    "category_id": "{category_id}",
    "spec": {
        "name": "EchoTestBlueprint",
        "description": "Echo agent for integration testing",
        "agents": [
            {
                "name": "EchoAgent",
                "description": "Agent that echoes messages",
                "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
                "additional_topics": ["echo_topic"],
                "listen_to_default_topic": False,
            }
        ],
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

SEED_LAUNCH_BODY: dict[str, Any] = {
    "guild_name": "EchoTestGuild",
    "user_id": "testuser123",
    "org_id": "testorg456",
    "description": "My test guild",
}


@pytest.fixture
def category_id(api) -> str:
    response = api.post("/catalog/categories/", SEED_CATEGORY_BODY)
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def blueprint_body(category_id) -> dict[str, Any]:
    """The seed's blueprint request with the category id filled in, as a client would send it."""
    body = copy.deepcopy(SEED_BLUEPRINT_BODY)
    body["category_id"] = category_id
    return body


@pytest.fixture
def blueprint_id(api, blueprint_body) -> str:
    response = api.post("/catalog/blueprints/", blueprint_body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture
def seed_agent_body() -> dict[str, Any]:
    return copy.deepcopy(SEED_AGENT_BODY)


@pytest.fixture
def seed_category_body() -> dict[str, Any]:
    return copy.deepcopy(SEED_CATEGORY_BODY)


@pytest.fixture
def seed_launch_body() -> dict[str, Any]:
    return copy.deepcopy(SEED_LAUNCH_BODY)
