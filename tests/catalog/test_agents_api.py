"""POST/GET /catalog/agents and GET /catalog/agents/{qualified_class_name} (seed 000, 1.1)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

SEED_NAME = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"


def test_seed_request_registers_the_echo_agent(api, seed_agent_body):
    response = api.post("/catalog/agents", seed_agent_body)

    assert response.status_code == 201
    entry = response.json()
    assert entry["qualified_class_name"] == SEED_NAME
    assert entry["description"] == "Agent that echoes messages back to the sender"
    assert entry["properties_schema"] == {}
    assert entry["dependencies"] == []
    assert entry["agent_name"] == "EchoAgent"
    assert "text" in entry["message_handlers"]


def test_registering_the_same_class_again_is_a_409_naming_it(api, seed_agent_body, problem):
    assert api.post("/catalog/agents", seed_agent_body).status_code == 201

    body = problem(api.post("/catalog/agents", seed_agent_body), 409, "conflict")

    assert SEED_NAME in body["detail"]
    assert "already exists" in body["detail"]


def test_trailing_slash_is_accepted(api, seed_agent_body):
    assert api.post("/catalog/agents/", seed_agent_body).status_code == 201
    assert api.get("/catalog/agents/").status_code == 200


def test_omitted_fields_come_from_the_class(api):
    response = api.post("/catalog/agents", {"qualified_class_name": "guilds.agents.echo.EchoAgent"})

    assert response.status_code == 201
    entry = response.json()
    assert entry["description"].startswith("Echoes what it receives")
    assert entry["properties_schema"]["type"] == "object"
    assert entry["dependencies"] == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("os.path.join", "not an agent class guildsite knows"),
        ("guilds.agents.nosuchmodule.Agent", "does not exist"),
        ("guilds.agents.echo.NoSuchAgent", "has no class"),
        ("EchoAgent", "not a qualified class name"),
    ],
)
def test_a_name_that_is_not_an_agent_class_is_a_400_saying_why(api, name, reason, problem):
    body = problem(api.post("/catalog/agents", {"qualified_class_name": name}), 400, "invalid")

    assert any(reason in message for message in body["errors"]["qualified_class_name"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "qualified_class_name"),
        ({"qualified_class_name": SEED_NAME, "properties_schema": []}, "properties_schema"),
        ({"qualified_class_name": SEED_NAME, "dependencies": {"a": 1}}, "dependencies"),
        ({"qualified_class_name": SEED_NAME, "message_handlers": "x"}, "message_handlers"),
    ],
)
def test_wrong_types_are_field_errors(api, payload, field, problem):
    body = problem(api.post("/catalog/agents", payload), 400, "invalid")

    assert field in body["errors"]


def test_list_and_filter_by_class_names(api, seed_agent_body):
    api.post("/catalog/agents", seed_agent_body)
    api.post("/catalog/agents", {"qualified_class_name": "guilds.agents.echo.EchoAgent"})

    everything = api.get("/catalog/agents").json()
    only_seed = api.get("/catalog/agents", {"class_names": [SEED_NAME]}).json()
    both = api.get(f"/catalog/agents?class_names={SEED_NAME}&class_names=guilds.agents.echo.EchoAgent").json()
    none = api.get("/catalog/agents?class_names=no.such.Agent").json()

    assert sorted(e["qualified_class_name"] for e in everything) == ["guilds.agents.echo.EchoAgent", SEED_NAME]
    assert [e["qualified_class_name"] for e in only_seed] == [SEED_NAME]
    assert len(both) == 2
    assert none == []


def test_detail_by_dotted_class_name(api, seed_agent_body):
    api.post("/catalog/agents", seed_agent_body)

    response = api.get(f"/catalog/agents/{SEED_NAME}")

    assert response.status_code == 200
    assert response.json()["qualified_class_name"] == SEED_NAME


def test_unknown_class_name_is_a_404(api, problem):
    body = problem(api.get("/catalog/agents/no.such.Agent"), 404, "not_found")

    assert "no.such.Agent" in body["detail"]


def test_list_is_one_query(api, seed_agent_body, django_assert_num_queries):
    api.post("/catalog/agents", seed_agent_body)
    api.post("/catalog/agents", {"qualified_class_name": "guilds.agents.echo.EchoAgent"})

    with django_assert_num_queries(1):
        assert len(api.get("/catalog/agents").json()) == 2
