"""/api/runs: LLM agents' runs in the guilds a caller sees, filtered, paged, with totals; one run with its messages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from guilds.models import Run
from tests import factories
from tests.factories import bearer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _auth_on(settings):
    settings.AUTH_DISABLED = False


@pytest.fixture
def world():
    """Org A: ann (launcher), bob (member), vic (viewer), ada (admin); org B: eve."""
    factories.organization("org-a", ann="member", bob="member", vic="viewer", ada="admin")
    factories.organization("org-b", eve="member")
    return factories.guild("A", org="org-a", user="ann"), factories.guild("B", org="org-b", user="eve")


def listing(api, who: str, query: str = "") -> dict:
    response = api.get(f"/api/runs{query}", **bearer(who))
    assert response.status_code == 200, response.content
    return response.json()


def ids(body: dict) -> list[str]:
    return [run["id"] for run in body["results"]]


def test_runs_of_the_guilds_one_sees_newest_first_with_totals(api, world):
    guild_a, guild_b = world
    older = factories.run(guild_a, input_tokens=100, output_tokens=20, cached_tokens=40, cost_usd="0.25")
    newer = factories.run(guild_a, agent_id="other", input_tokens=1, output_tokens=2, cached_tokens=0, cost_usd="0.5")
    theirs = factories.run(guild_b)
    for who in ("ann", "bob", "vic", "ada"):  # like the guild's detail: everyone in its organisation
        body = listing(api, who)
        assert ids(body) == [newer.id, older.id]
    assert body["totals"] == {"runs": 2, "input_tokens": 101, "output_tokens": 22, "cached_tokens": 40,
                              "cost_usd": "0.75", "runs_without_cost": 0}
    run = body["results"][0]
    assert (run["guild_id"], run["agent_id"], run["cost_usd"], run["status"]) == (guild_a.id, "other", "0.5", "succeeded")
    assert ids(listing(api, "eve")) == [theirs.id]
    empty = listing(api, "ann", f"?guild_id={guild_b.id}")
    assert empty == {"results": [], "totals": {"runs": 0, "input_tokens": 0, "output_tokens": 0, "cached_tokens": 0,
                                               "cost_usd": "0", "runs_without_cost": 0}}


def test_an_unknown_figure_makes_its_total_null_never_zero(api, world):
    guild_a, _ = world
    factories.run(guild_a, cost_usd="1.5")
    factories.run(guild_a, model="a-model-without-a-price", cost_usd=None)
    factories.run(guild_a, status="running", input_tokens=None, output_tokens=None, cached_tokens=None, cost_usd=None)
    totals = listing(api, "ann")["totals"]
    assert totals == {"runs": 3, "input_tokens": None, "output_tokens": None, "cached_tokens": None, "cost_usd": None,
                      "runs_without_cost": 2}
    assert listing(api, "ann", "?status=succeeded")["totals"]["input_tokens"] == 20


def test_filters_narrow_the_results_and_the_totals(api, world):
    guild_a, _ = world
    factories.organization("org-a2", ann="member")
    guild_a2 = factories.guild("A2", org="org-a2", user="ann")
    chat = factories.run(guild_a, agent_id="llm", status="failed", input_tokens=7, message_id=2**62 + 5)
    api_run = factories.run(guild_a, agent_id="llm", trigger="api", status="succeeded")
    other_agent = factories.run(guild_a, agent_id="other", status="budget_exhausted")
    elsewhere = factories.run(guild_a2, agent_id="llm")
    old = factories.run(guild_a, agent_id="llm")
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    assert set(ids(listing(api, "ann", f"?guild_id={guild_a.id}"))) == {chat.id, api_run.id, other_agent.id, old.id}
    assert set(ids(listing(api, "ann", "?agent_id=llm"))) == {chat.id, api_run.id, elsewhere.id, old.id}
    assert ids(listing(api, "ann", "?status=failed")) == [chat.id]
    assert set(ids(listing(api, "ann", "?status=FAILED,budget_exhausted"))) == {chat.id, other_agent.id}
    assert ids(listing(api, "ann", "?trigger=api")) == [api_run.id]
    assert ids(listing(api, "ann", f"?message_id={2**62 + 5}")) == [chat.id]
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert old.id not in ids(listing(api, "ann", f"?since={yesterday.replace('+', '%2B')}"))
    assert ids(listing(api, "ann", f"?until={yesterday.replace('+', '%2B')}")) == [old.id]
    assert ids(listing(api, "ann", f"?until={(timezone.now() - timedelta(days=2)).date().isoformat()}")) == [old.id]
    narrowed = listing(api, "ann", f"?guild_id={guild_a.id}&agent_id=llm&status=failed")
    assert narrowed["totals"]["input_tokens"] == 7
    assert narrowed["totals"]["runs"] == 1


def test_runs_page_while_the_totals_cover_the_whole_filter(api, world):
    guild_a, _ = world
    for _ in range(3):
        factories.run(guild_a, input_tokens=10)
    response = api.get("/api/runs?limit=2", **bearer("ann"))
    assert len(response.json()["results"]) == 2
    assert response.json()["totals"]["input_tokens"] == 30
    assert 'rel="next"' in response["Link"]
    assert len(listing(api, "ann", "?limit=2&offset=2")["results"]) == 1


@pytest.mark.parametrize("query", ["?status=lost", "?trigger=cron", "?since=yesterday", "?until=2026-13-45",
                                   "?since=" + "2" * 65, "?message_id=x", "?guild_id=" + "g" * 65, "?limit=1001"])
def test_bad_filters_are_a_400(api, problem, world, query):
    problem(api.get(f"/api/runs{query}", **bearer("ann")), 400, "invalid")


def test_a_run_comes_with_its_threads_messages_for_whoever_may_read_that_history(api, problem, world):
    guild_a, guild_b = world
    thread = factories.thread(guild_a, "bob")
    run = factories.run(guild_a, of=thread, message_id=123)
    factories.thread_message(thread, "user", "hello", run=run)
    factories.thread_message(thread, "assistant", "hi bob", run=run, output_tokens=2)
    for who in ("bob", "ann", "ada"):  # the requester, the guild's launcher, the organisation's admin
        response = api.get(f"/api/runs/{run.id}", **bearer(who))
        assert response.status_code == 200, response.content
        assert [m["content"] for m in response.json()["messages"]] == ["hello", "hi bob"]
        assert response.json()["thread_id"] == thread.id
        assert response.json()["message_id"] == "123"
    shown = api.get(f"/api/runs/{run.id}", **bearer("vic")).json()  # sees the run, not bob's conversation
    assert (shown["id"], shown["messages"]) == (run.id, None)
    problem(api.get(f"/api/runs/{run.id}", **bearer("eve")), 404, "not_found")
    problem(api.get(f"/api/runs/{factories.run(guild_b).id}", **bearer("ann")), 404, "not_found")
    problem(api.get("/api/runs/nope", **bearer("ann")), 404, "not_found")
    problem(api.get(f"/api/runs/{run.id}"), 401)
