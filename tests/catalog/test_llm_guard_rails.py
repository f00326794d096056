"""A blueprint may name only the key variables and provider hosts the site allows (GUILDSITE_LLM_*)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

LLM = "guilds.agents.llm.LLMAgent"


def llm_blueprint(body: dict, **properties) -> dict:
    body["spec"] = {"name": "S", "description": "", "agents": [{"name": "A", "class_name": LLM,
                                                                  "properties": properties}]}
    return body


def test_a_key_variable_the_site_does_not_allow_is_a_400_on_that_field(api, problem, blueprint_body):
    body = problem(api.post("/catalog/blueprints/", llm_blueprint(blueprint_body, api_key_env="SECRET_KEY")),
                   400, "invalid")
    assert "SECRET_KEY" in body["errors"]["spec.agents.0.properties.api_key_env"][0]


@pytest.mark.parametrize("url", ["https://attacker.example/v1", "https://api.openai.com.attacker.example/v1", "file:///etc/passwd"])
def test_a_provider_host_the_site_does_not_allow_is_a_400_on_that_field(api, problem, blueprint_body, url):
    body = problem(api.post("/catalog/blueprints/", llm_blueprint(blueprint_body, base_url=url)), 400, "invalid")
    assert list(body["errors"]) == ["spec.agents.0.properties.base_url"]


def test_allowed_hosts_and_variables_pass_and_the_original_class_path_is_accepted(api, blueprint_body, settings):
    settings.GUILDSITE_LLM_HOSTS = ["api.openai.com", "localhost:11434"]
    settings.GUILDSITE_LLM_KEY_ENVS = ["OPENAI_API_KEY", "OLLAMA_KEY"]
    llm_blueprint(blueprint_body, base_url="http://localhost:11434/v1", api_key_env="OLLAMA_KEY",
                  default_system_prompt="You help.", model="llama3.2")
    blueprint_body["spec"]["agents"][0]["class_name"] = "rustic_ai.litellm.agent.LiteLLMAgent"
    response = api.post("/catalog/blueprints/", blueprint_body)
    assert response.status_code == 201, response.content
