from __future__ import annotations

import json

import pytest

from tests.runtime.conftest import LLM_SETTINGS, celery_workers, rig  # noqa: F401 - shared fixtures
from tests.support.fake_llm import FakeLLM
from tests.support.mcp_server import ToolServer

LLM = "guilds.agents.llm.LLMAgent"


@pytest.fixture
def fake_llm():
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture
def llm_settings(settings, monkeypatch):
    """The site as the Celery workers see it (LLM_SETTINGS), in this process too."""
    settings.GUILDSITE_LLM_HOSTS = LLM_SETTINGS["GUILDSITE_LLM_HOSTS"].split(",")
    settings.GUILDSITE_LLM_KEY_ENVS = LLM_SETTINGS["GUILDSITE_LLM_KEY_ENVS"].split(",")
    settings.GUILDSITE_LLM_RETRY_BASE_SECONDS = float(LLM_SETTINGS["GUILDSITE_LLM_RETRY_BASE_SECONDS"])
    settings.GUILDSITE_LLM_TIMEOUT_SECONDS = float(LLM_SETTINGS["GUILDSITE_LLM_TIMEOUT_SECONDS"])
    monkeypatch.setenv("GUILDSITE_TEST_LLM_KEY", LLM_SETTINGS["GUILDSITE_TEST_LLM_KEY"])
    settings.GUILDSITE_MCP_HOSTS = LLM_SETTINGS["GUILDSITE_MCP_HOSTS"].split(",")
    settings.GUILDSITE_MCP_TIMEOUT_SECONDS = float(LLM_SETTINGS["GUILDSITE_MCP_TIMEOUT_SECONDS"])
    settings.GUILDSITE_MCP_TOKEN_HOSTS = json.loads(LLM_SETTINGS["GUILDSITE_MCP_TOKEN_HOSTS"])
    monkeypatch.setenv("GUILDSITE_TEST_MCP_TOKEN", LLM_SETTINGS["GUILDSITE_TEST_MCP_TOKEN"])
    return settings


@pytest.fixture
def tool_server():
    server = ToolServer()
    yield server
    server.close()


def llm_spec(base_url: str | None, **properties) -> dict:
    """Seed 000's blueprint shape with the LLM agent in the EchoAgent's place (its topic, not the default)."""
    props = {"api_key_env": "GUILDSITE_TEST_LLM_KEY", "model": "gpt-4o-mini", **properties}
    if base_url is not None:
        props["base_url"] = base_url
    return {
        "name": "LLMTestBlueprint",
        "description": "An LLM agent for tests",
        "agents": [{"name": "Assistant", "description": "Answers with a model", "class_name": LLM,
                    "additional_topics": ["llm_topic"], "listen_to_default_topic": False, "properties": props}],
    }
