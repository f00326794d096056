"""GET /api/guilds and GET /api/guilds/{id}."""

from __future__ import annotations

from datetime import timedelta

import pytest

from guilds.agents.llm import LLMAgent
from guilds.models import Guild, GuildStatus
from guilds.runtime.registry import _resolved
from tests.factories import guild as make_guild

pytestmark = pytest.mark.django_db


def ids(api, query: str = "") -> set[str]:
    response = api.get(f"/api/guilds{query}")
    assert response.status_code == 200, response.content
    return {g["id"] for g in response.json()}


def test_detail(api):
    guild = make_guild("EchoTestGuild")

    response = api.get(f"/api/guilds/{guild.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == guild.id
    assert body["name"] == "EchoTestGuild"
    assert body["status"] == "REQUESTED"
    assert body["organization_id"] == "org1"
    assert body["user_id"] == "user1"
    assert body["blueprint_id"] is None
    assert body["spec"]["agents"][0]["name"] == "EchoAgent"
    assert body["created_at"]
    assert body["updated_at"]
    assert body["started_at"] is None
    assert body["stopped_at"] is None
    assert "status_detail" in body


def test_detail_with_trailing_slash(api):
    assert api.get(f"/api/guilds/{make_guild().id}/").status_code == 200


def test_unknown_guild_is_a_404(api, problem):
    assert "nope" in problem(api.get("/api/guilds/nope"), 404, "not_found")["detail"]


def test_list_newest_first_without_specs(api):
    older, newer = make_guild("A"), make_guild("B")
    Guild.objects.filter(pk=older.pk).update(created_at=older.created_at - timedelta(seconds=1))

    listed = api.get("/api/guilds").json()

    assert [g["id"] for g in listed] == [newer.id, older.id]
    assert all("spec" not in g for g in listed)


def test_filters(api):
    a = make_guild(org="org1", user="u1")
    b = make_guild(org="org2", user="u1", status=GuildStatus.RUNNING)
    c = make_guild(org="org2", user="u2", status=GuildStatus.ERROR)

    assert ids(api) == {a.id, b.id, c.id}
    assert ids(api, "?organization_id=org2") == {b.id, c.id}
    assert ids(api, "?org_id=org1") == {a.id}
    assert ids(api, "?user_id=u1") == {a.id, b.id}
    assert ids(api, "?status=RUNNING") == {b.id}
    assert ids(api, "?status=running&status=ERROR") == {b.id, c.id}
    assert ids(api, "?status=RUNNING,REQUESTED") == {a.id, b.id}
    assert ids(api, "?org_id=org2&user_id=u2&status=ERROR") == {c.id}


def test_an_invalid_status_is_a_400_listing_the_valid_ones(api, problem):
    body = problem(api.get("/api/guilds?status=RUNNING,bogus"), 400, "invalid")

    message = body["errors"]["status"][0]
    assert "BOGUS" in message
    assert all(status in message for status in GuildStatus.values)


def test_list_is_one_query(api, django_assert_num_queries):
    for n in range(5):
        make_guild(f"G{n}")

    with django_assert_num_queries(1):
        assert len(api.get("/api/guilds").json()) == 5


def test_list_limit(api, problem):
    for n in range(3):
        make_guild(f"G{n}")

    response = api.get("/api/guilds?limit=2")

    assert len(response.json()) == 2
    assert 'rel="next"' in response["Link"]
    assert "limit" in problem(api.get("/api/guilds?limit=abc"), 400)["errors"]


class TutorAgent(LLMAgent):
    """An LLM agent of a site's own, as a team would subclass it."""


@pytest.fixture
def tutor_package(settings):
    """This module's agents resolvable, for this test only (resolved classes are cached by name)."""
    settings.GUILDSITE_AGENT_PACKAGES = [*settings.GUILDSITE_AGENT_PACKAGES, "tests.guilds_api"]
    yield
    _resolved.cache_clear()


def test_detail_names_the_agents_that_keep_threads_whatever_their_class_is_called(api, tutor_package):
    agents = [{"name": name, "class_name": class_name} for name, class_name in (
        ("Echo", "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"),
        ("Ours", "guilds.agents.llm.LLMAgent"),
        ("Original", "rustic_ai.litellm.agent.LiteLLMAgent"),
        ("Tutor", "tests.guilds_api.test_guilds_api.TutorAgent"))]
    guild = make_guild(spec={"name": "Mixed", "agents": agents})

    body = api.get(f"/api/guilds/{guild.id}").json()

    ids_by_name = {agent["name"]: agent["id"] for agent in body["spec"]["agents"]}
    assert body["thread_agent_ids"] == [ids_by_name["Ours"], ids_by_name["Original"], ids_by_name["Tutor"]]
    assert api.get(f"/api/guilds/{make_guild().id}").json()["thread_agent_ids"] == []


def test_an_llm_agent_of_a_sites_own_class_is_shown_as_an_llm_agent(tutor_package):
    from guilds.dashboard.selectors import agent_kind

    assert agent_kind("tests.guilds_api.test_guilds_api.TutorAgent") == "llm"
    assert agent_kind("rustic_ai.litellm.agent.LiteLLMAgent") == "llm"
    assert agent_kind("rustic_ai.core.agents.testutils.echo_agent.EchoAgent") == "built-in"
    assert agent_kind("guilds.agents.gone.Agent") == "built-in"  # a class removed since launch
