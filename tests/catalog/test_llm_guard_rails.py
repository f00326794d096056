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


def mcp(url: str = "http://tools.internal:8000/mcp", **server) -> list[dict]:
    return [{"name": "corp-tools", "url": url, **server}]


@pytest.mark.parametrize(("server", "field", "says"), [
    (mcp(), "url", "GUILDSITE_MCP_HOSTS"),  # no MCP host is allowed until the site lists it
    (mcp("https://attacker.example/mcp"), "url", "attacker.example"),
    (mcp(auth_token="sk-live-1234"), "auth_token", "${NAME}"),  # a token itself, readable by the blueprint's readers
    (mcp(auth_token="${SECRET_KEY}"), "auth_token", "SECRET_KEY"),
    (mcp(auth_token="${OPENAI_API_KEY}"), "auth_token", "not a token this site sends to tools.internal:8000"),
    (mcp(allowed_tools=["x" * 129]), "allowed_tools.0", "at most 128"),
])
def test_an_mcp_server_the_site_does_not_allow_is_a_400_on_that_field(api, problem, blueprint_body, settings, server,
                                                                       field, says):
    if field != "url":
        settings.GUILDSITE_MCP_HOSTS = ["tools.internal:8000"]
    body = problem(api.post("/catalog/blueprints/", llm_blueprint(blueprint_body, mcp_servers=server)), 400, "invalid")
    errors = body["errors"][f"spec.agents.0.properties.mcp_servers.0.{field}"]
    assert says in errors[0]


def test_an_allowed_mcp_server_with_a_token_reference_passes(api, blueprint_body, settings):
    settings.GUILDSITE_MCP_HOSTS = ["tools.internal:8000"]
    settings.GUILDSITE_LLM_KEY_ENVS = ["OPENAI_API_KEY", "ACME_TOKEN"]
    settings.GUILDSITE_MCP_TOKEN_HOSTS = {"ACME_TOKEN": ["tools.internal"]}
    response = api.post("/catalog/blueprints/", llm_blueprint(blueprint_body, mcp_servers=mcp(
        auth_token="${ACME_TOKEN}", allowed_tools=["db_*", "send_email"])))
    assert response.status_code == 201, response.content
    spec = api.get(f"/catalog/blueprints/{response.json()['id']}").json()["spec"]
    assert spec["agents"][0]["properties"]["mcp_servers"][0]["auth_token"] == "***"  # tokens' fields are redacted
    assert spec["agents"][0]["properties"]["mcp_servers"][0]["allowed_tools"] == ["db_*", "send_email"]
