"""POST /catalog/blueprints/{id}/guilds (seed 000, 2.1): the guild is stored with the spec, REQUESTED."""

from __future__ import annotations

import pytest

from catalog.models import Blueprint
from guilds.models import Guild

pytestmark = pytest.mark.django_db


def test_seed_request_creates_a_requested_guild(api, blueprint_id, blueprint_body, seed_launch_body):
    response = api.post(f"/catalog/blueprints/{blueprint_id}/guilds", seed_launch_body)

    assert response.status_code == 201, response.content
    assert set(response.json()) == {"id"}
    guild = api.get(f"/api/guilds/{response.json()['id']}").json()
    assert guild["status"] == "REQUESTED"
    assert guild["name"] == "EchoTestGuild"
    assert guild["description"] == "My test guild"
    assert guild["user_id"] == "testuser123"
    assert guild["organization_id"] == "testorg456"
    assert guild["blueprint_id"] == blueprint_id
    assert guild["spec"]["name"] == "EchoTestGuild"
    agent = guild["spec"]["agents"][0]
    assert agent["name"] == "EchoAgent"
    assert agent["additional_topics"] == ["echo_topic"]
    assert agent["listen_to_default_topic"] is False


def test_launching_leaves_the_blueprint_spec_untouched(api, blueprint_id, blueprint_body, seed_launch_body):
    api.post(f"/catalog/blueprints/{blueprint_id}/guilds", seed_launch_body)

    assert api.get(f"/catalog/blueprints/{blueprint_id}").json()["spec"] == blueprint_body["spec"]


def test_without_description_the_spec_description_is_kept(api, blueprint_id, seed_launch_body):
    del seed_launch_body["description"]

    guild_id = api.post(f"/catalog/blueprints/{blueprint_id}/guilds", seed_launch_body).json()["id"]

    assert Guild.objects.get(pk=guild_id).description == "Echo agent for integration testing"


def test_unknown_blueprint_is_a_404(api, problem, seed_launch_body):
    response = api.post("/catalog/blueprints/nope/guilds", seed_launch_body)

    assert "nope" in problem(response, 404, "not_found")["detail"]


@pytest.mark.parametrize("missing", ["guild_name", "user_id", "org_id"])
def test_missing_fields_are_field_errors(api, problem, blueprint_id, seed_launch_body, missing):
    del seed_launch_body[missing]

    body = problem(api.post(f"/catalog/blueprints/{blueprint_id}/guilds", seed_launch_body), 400, "invalid")

    assert missing in body["errors"]
    assert not Guild.objects.exists()


def test_the_detail_names_every_missing_field(api, problem, blueprint_id, seed_launch_body):
    del seed_launch_body["guild_name"], seed_launch_body["org_id"]

    body = problem(api.post(f"/catalog/blueprints/{blueprint_id}/guilds", seed_launch_body), 400, "invalid")

    assert body["detail"] == ("Invalid input: guild_name: This field is required.; "
                              "org_id: This field is required.")
    assert set(body["errors"]) == {"guild_name", "org_id"}

def test_a_user_id_that_cannot_be_in_a_topic_name_is_refused(api, problem, blueprint_id, seed_launch_body):
    seed_launch_body["user_id"] = "a:b"

    assert "user_id" in problem(api.post(f"/catalog/blueprints/{blueprint_id}/guilds", seed_launch_body), 400)[
        "errors"
    ]


def test_a_blueprint_whose_spec_no_longer_validates_is_a_409(api, problem, blueprint_id, seed_launch_body):
    # As if an agent class had been removed from the site after the blueprint was saved.
    Blueprint.objects.filter(pk=blueprint_id).update(
        spec={"name": "S", "agents": [{"name": "Gone", "class_name": "guilds.agents.gone.GoneAgent"}]}
    )

    body = problem(api.post(f"/catalog/blueprints/{blueprint_id}/guilds", seed_launch_body), 409, "blueprint_invalid")

    assert "guilds.agents.gone.GoneAgent" in body["detail"]
    assert not Guild.objects.exists()


def test_trailing_slash_is_accepted(api, blueprint_id, seed_launch_body):
    assert api.post(f"/catalog/blueprints/{blueprint_id}/guilds/", seed_launch_body).status_code == 201
