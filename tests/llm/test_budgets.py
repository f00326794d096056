"""Budgets: the REST endpoints, a run refused before the provider, a run stopped mid-stream, the 80 % warning once
a month, and a new month's clean slate."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from guilds import budgets
from guilds.models import Budget, Run, RunStatus
from messaging import topics as t
from tests import factories
from tests.factories import bearer
from tests.llm.conftest import llm_spec
from tests.llm.test_llm_agent import ERROR, eventually, frame, is_reply, launched, own_id_of, usercomms
from tests.support.fake_llm import Answer
from tests.support.sockets import Socket

pytestmark = pytest.mark.django_db(transaction=True)

ORG = "testorg456"  # the rig's guilds' organisation


# --- REST ------------------------------------------------------------------------------------------------


@pytest.fixture
def people(settings):
    settings.AUTH_DISABLED = False
    factories.organization(ORG, boss="admin", mia="member", vic="viewer")
    factories.organization("org-b", eve="admin")


def test_an_admin_sets_and_reads_the_organisations_budget_with_this_months_spend(api, problem, people):
    guild = factories.guild(org=ORG)
    factories.run(guild, cost_usd=Decimal("0.25"), input_tokens=100, output_tokens=20)
    factories.run(guild, cost_usd=None, input_tokens=10, output_tokens=5)  # an unknown model: tokens only
    old = factories.run(guild, cost_usd=Decimal("5"), input_tokens=1000, output_tokens=1000)
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))  # another month
    url = f"/api/organizations/{ORG}/budget"
    assert api.get(url, **bearer("boss")).json() == {
        "monthly_usd": None, "monthly_tokens": None, "month": timezone.now().strftime("%Y-%m"),
        "spent_usd": "0.2500", "spent_tokens": 135, "runs_without_cost": 1}
    response = api.put(url, {"monthly_usd": "10.50", "monthly_tokens": 100000}, **bearer("boss"))
    assert response.status_code == 200, response.content
    assert (response.json()["monthly_usd"], response.json()["monthly_tokens"]) == ("10.5000", 100000)
    cleared = api.put(url, {"monthly_tokens": 5000}, **bearer("boss")).json()  # a PUT replaces: no USD cap now
    assert (cleared["monthly_usd"], cleared["monthly_tokens"]) == (None, 5000)
    assert Budget.objects.get(organization_id=ORG).monthly_tokens == 5000


def test_budgets_are_for_the_organisations_admins(api, problem, people):
    guild = factories.guild(org=ORG)
    for who, status in [("mia", 403), ("vic", 403), ("eve", 404)]:
        problem(api.get(f"/api/organizations/{ORG}/budget", **bearer(who)), status)
        problem(api.put(f"/api/guilds/{guild.pk}/budget", {"monthly_usd": "1"}, **bearer(who)), status)
    problem(api.get(f"/api/guilds/{guild.pk}/budget"), 401)
    assert not Budget.objects.exists()
    problem(api.put(f"/api/guilds/{guild.pk}/budget", {"monthly_usd": "-1"}, **bearer("boss")), 400, "invalid")
    problem(api.put(f"/api/guilds/{guild.pk}/budget", {"monthly_tokens": "lots"}, **bearer("boss")), 400, "invalid")
    assert api.put(f"/api/guilds/{guild.pk}/budget", {"monthly_usd": "2"}, **bearer("boss")).status_code == 200
    assert Budget.objects.get(guild=guild).monthly_usd == Decimal("2")


# --- runs -----------------------------------------------------------------------------------------------


async def budget(**fields) -> Budget:
    return await sync_to_async(Budget.objects.create)(**fields)


async def test_a_run_over_a_spent_budget_never_reaches_the_provider(rig, fake_llm, llm_settings):
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    await sync_to_async(factories.run)(guild, input_tokens=90, output_tokens=20)
    await budget(organization_id=ORG, monthly_tokens=100)
    async with usercomms(guild.id) as user:
        await user.send(frame("Anything?"))
        own = await own_id_of(user)
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="the error")
    assert error["payload"]["error_type"] == "BUDGET_EXHAUSTED"
    assert "organization's budget" in error["payload"]["error_message"]
    assert "110 of 100 tokens" in error["payload"]["error_message"]
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.BUDGET_EXHAUSTED).first(),
                           what="the refused run")
    assert run.error == error["payload"]["error_message"]
    assert fake_llm.requests == []


async def test_a_run_that_crosses_its_budget_mid_stream_stops_there_and_keeps_its_partial_answer(
        rig, fake_llm, llm_settings):
    words = [f"w{i:02d} " for i in range(200)]  # 4 characters a word: a token each, as estimated
    fake_llm.then(Answer(deltas=words))
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    await budget(guild_id=guild.id, monthly_tokens=60)
    async with usercomms(guild.id) as user:
        await user.send(frame("Count for me"))
        own = await own_id_of(user)
        reply = await user.until(is_reply(own), what="the partial answer")
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="why")
    assert error["payload"]["error_type"] == "BUDGET_EXHAUSTED"
    assert "guild's budget" in error["payload"]["error_message"]
    partial = reply["payload"]["text"]
    assert partial.startswith("w00 w01 ")
    assert 20 < len(partial.split()) < 60  # stopped near the cap (the prompt's estimate counts too), not at 200
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.BUDGET_EXHAUSTED).first(),
                           what="the stopped run")
    assert run.input_tokens + run.output_tokens >= 60  # estimated: what budgets count from now on
    assert any("estimated" in note for note in run.notes)


async def test_a_budget_at_80_percent_warns_the_guilds_system_sockets_once_a_month(rig, fake_llm, llm_settings):
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    await budget(guild_id=guild.id, monthly_tokens=100)
    await sync_to_async(factories.run)(guild, input_tokens=60, output_tokens=0)
    status = await sync_to_async(rig.observe)(guild, t.GUILD_STATUS_TOPIC)
    async with usercomms(guild.id) as user, Socket(f"/ws/guilds/{guild.id}/syscomms/testuser123") as system:
        for number in range(2):  # 12 + 5 tokens each: 77 (no warning yet), then 94 (the warning)
            await user.send(frame(f"Question {number}", client_id=f"q{number}"))
            await user.until(is_reply(await own_id_of(user, f"q{number}")), what=f"answer {number}")
        shown = await system.until(lambda f: f["format"] == "budgetWarning", what="the warning on the system socket")
    assert shown["payload"]["spent_tokens"] == 94
    agent_id = guild.spec["agents"][0]["id"]
    await eventually(lambda: Run.objects.filter(guild=guild, agent_id=agent_id, status=RunStatus.SUCCEEDED).count() == 2,
                     what="both runs finished")
    await eventually(lambda: status.of_format("budgetWarning"), what="the warning")
    warnings = [m.payload for m in status.of_format("budgetWarning")]
    assert [(w["scope"], w["spent_tokens"], w["limit_tokens"], w["limit_usd"], w["month"]) for w in warnings] == [
        ("guild", 94, 100, None, budgets.month_of(timezone.now())[1])]


@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)  # the clock is this process's
async def test_a_new_month_starts_with_nothing_spent(rig, fake_llm, llm_settings, monkeypatch):
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    await budget(guild_id=guild.id, monthly_tokens=10)
    await sync_to_async(factories.run)(guild, input_tokens=12, output_tokens=0)  # this month's budget is spent
    next_month = (timezone.now().replace(day=1) + timedelta(days=32)).replace(day=2)
    monkeypatch.setattr(budgets, "clock", lambda: next_month)
    async with usercomms(guild.id) as user:
        await user.send(frame("New month"))
        reply = await user.until(is_reply(await own_id_of(user)), what="an answer: last month's spend is behind")
    assert reply["payload"]["text"] == "Hello from the fake model."


def test_the_warning_goes_once_a_month_whichever_process_asks(monkeypatch):
    from guilds.runtime import loop as runtime_loop

    guild = factories.guild(org=ORG)
    factories.run(guild, input_tokens=85, output_tokens=0)
    last_month = budgets.month_of(timezone.now().replace(day=1) - timedelta(days=1))[1]
    Budget.objects.create(guild=guild, monthly_tokens=100, warned_month=last_month)
    first, second = (runtime_loop.run(budgets.warnings_due(guild.pk)) for _ in range(2))
    assert [(w["scope"], w["spent_tokens"]) for w in first] == [("guild", 85)]
    assert second == []
    assert Budget.objects.get(guild=guild).warned_month == budgets.month_of(timezone.now())[1]


async def test_a_prompt_over_the_budget_is_never_sent_and_costs_nothing(rig, fake_llm, llm_settings):
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    await budget(guild_id=guild.id, monthly_tokens=20)
    async with usercomms(guild.id) as user:
        await user.send(frame("x" * 400))  # about 100 tokens of prompt
        own = await own_id_of(user)
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="the error")
    assert error["payload"]["error_type"] == "BUDGET_EXHAUSTED"
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.BUDGET_EXHAUSTED).first(),
                           what="the stopped run")
    assert (run.input_tokens, run.output_tokens) == (0, 0)  # nothing went to the provider
    assert fake_llm.requests == []
