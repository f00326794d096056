"""/api/threads: a user's own conversations with LLM agents, their messages, rename and delete."""

from __future__ import annotations

import pytest

from guilds.models import Run, Thread
from guildsite.accounts.models import Membership
from tests import factories
from tests.factories import bearer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _auth_on(settings):
    settings.AUTH_DISABLED = False


@pytest.fixture
def world():
    """Org A: ann and bob (members), vic (viewer); org B: eve. A guild in each."""
    factories.organization("org-a", ann="member", bob="member", vic="viewer")
    factories.organization("org-b", eve="member")
    guild_a = factories.guild("A", org="org-a", user="ann")
    guild_b = factories.guild("B", org="org-b", user="eve")
    return guild_a, guild_b


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()]


def test_a_user_lists_their_own_threads_newest_activity_first_and_filters_them(api, world):
    guild_a, guild_b = world
    first = factories.thread(guild_a, "ann", agent_id="llm", title="first")
    second = factories.thread(guild_a, "ann", agent_id="other", conversation_id="c2")
    factories.thread(guild_a, "bob", agent_id="llm")
    factories.thread(guild_b, "eve", agent_id="llm")
    assert ids(api.get("/api/threads", **bearer("ann"))) == [second.id, first.id]
    assert ids(api.get("/api/threads?agent_id=llm", **bearer("ann"))) == [first.id]
    assert ids(api.get(f"/api/threads?guild_id={guild_a.id}&agent_id=other", **bearer("ann"))) == [second.id]
    assert ids(api.get(f"/api/threads?guild_id={guild_b.id}", **bearer("ann"))) == []
    body = api.get(f"/api/threads/{first.id}", **bearer("ann")).json()
    assert body == {**body, "guild_id": guild_a.id, "agent_id": "llm", "organization_id": "org-a", "title": "first",
                    "conversation_id": ""}


def test_threads_page_with_a_next_link(api, world):
    guild_a, _ = world
    made = [factories.thread(guild_a, "ann", conversation_id=f"c{n}") for n in range(3)]
    page = api.get("/api/threads?limit=2", **bearer("ann"))
    assert ids(page) == [made[2].id, made[1].id]
    assert 'rel="next"' in page["Link"]
    assert "offset=2" in page["Link"]
    last = api.get("/api/threads?limit=2&offset=2", **bearer("ann"))
    assert ids(last) == [made[0].id]
    assert "Link" not in last


def test_messages_come_oldest_first_with_their_figures_and_page(api, world):
    guild_a, _ = world
    thread = factories.thread(guild_a, "ann")
    run = factories.run(guild_a, of=thread)
    factories.thread_message(thread, "user", "hi", bus_message_id=2**60 + 1)
    factories.thread_message(thread, "assistant", "", tool_calls=[{"id": "t1", "type": "function",
                                                                   "function": {"name": "now", "arguments": "{}"}}],
                             input_tokens=12, output_tokens=3, run=run)
    factories.thread_message(thread, "tool", "12:00", tool_call_id="t1", run=run)
    response = api.get(f"/api/threads/{thread.id}/messages", **bearer("ann"))
    assert response.status_code == 200, response.content
    messages = response.json()
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[0]["message_id"] == str(2**60 + 1)  # a decimal string: JavaScript keeps every digit
    assert messages[1]["tool_calls"][0]["function"]["name"] == "now"
    assert (messages[1]["input_tokens"], messages[1]["output_tokens"], messages[1]["run_id"]) == (12, 3, run.id)
    assert {"content", "created_at", "id"} <= set(messages[0])
    page = api.get(f"/api/threads/{thread.id}/messages?limit=1&offset=1", **bearer("ann"))
    assert [m["role"] for m in page.json()] == ["assistant"]
    assert 'rel="next"' in page["Link"]


def test_another_users_or_another_organisations_thread_is_a_404(api, problem, world):
    guild_a, guild_b = world
    bobs = factories.thread(guild_a, "bob")
    eves = factories.thread(guild_b, "eve")
    for thread in (bobs, eves):
        problem(api.get(f"/api/threads/{thread.id}", **bearer("ann")), 404, "not_found")
        problem(api.get(f"/api/threads/{thread.id}/messages", **bearer("ann")), 404, "not_found")
        problem(api.patch(f"/api/threads/{thread.id}", {"title": "mine"}, **bearer("ann")), 404, "not_found")
        problem(api.delete(f"/api/threads/{thread.id}", **bearer("ann")), 404, "not_found")
    problem(api.get("/api/threads/nope", **bearer("ann")), 404, "not_found")
    assert Thread.objects.filter(pk__in=[bobs.pk, eves.pk], title="").count() == 2
    problem(api.get("/api/threads"), 401)


def test_a_user_who_left_the_organisation_no_longer_sees_their_threads(api, problem, world):
    guild_a, _ = world
    thread = factories.thread(guild_a, "ann")
    factories.organization("org-c", ann="member")  # still signed in somewhere
    Membership.objects.filter(user__username="ann", organization_id="org-a").delete()
    assert ids(api.get("/api/threads", **bearer("ann"))) == []
    problem(api.get(f"/api/threads/{thread.id}", **bearer("ann")), 404)


def test_rename_is_size_limited_and_delete_is_a_204_that_keeps_the_runs(api, problem, world):
    guild_a, _ = world
    thread = factories.thread(guild_a, "ann")
    run = factories.run(guild_a, of=thread)
    renamed = api.patch(f"/api/threads/{thread.id}", {"title": "  Trip plans  "}, **bearer("ann"))
    assert (renamed.status_code, renamed.json()["title"]) == (200, "Trip plans")
    too_long = problem(api.patch(f"/api/threads/{thread.id}", {"title": "x" * 201}, **bearer("ann")), 400, "invalid")
    assert "title" in too_long["errors"]
    problem(api.patch(f"/api/threads/{thread.id}", {}, **bearer("ann")), 400, "invalid")
    problem(api.patch(f"/api/threads/{thread.id}", {"title": ["a"]}, **bearer("ann")), 400, "invalid")
    thread.refresh_from_db()
    assert thread.title == "Trip plans"
    deleted = api.delete(f"/api/threads/{thread.id}", **bearer("ann"))
    assert deleted.status_code == 204
    assert not Thread.objects.filter(pk=thread.pk).exists()
    assert Run.objects.get(pk=run.pk).thread_id is None


def test_a_viewer_reads_their_thread_but_neither_renames_nor_deletes_it(api, problem, world):
    guild_a, _ = world
    thread = factories.thread(guild_a, "vic")
    assert ids(api.get("/api/threads", **bearer("vic"))) == [thread.id]
    problem(api.patch(f"/api/threads/{thread.id}", {"title": "mine"}, **bearer("vic")), 403, "permission_denied")
    problem(api.delete(f"/api/threads/{thread.id}", **bearer("vic")), 403, "permission_denied")


@pytest.mark.parametrize("query", ["?guild_id=" + "g" * 65, "?agent_id=" + "a" * 129, "?limit=0", "?offset=-1"])
def test_oversized_filters_and_bad_paging_are_a_400(api, problem, world, query):
    problem(api.get(f"/api/threads{query}", **bearer("ann")), 400, "invalid")
