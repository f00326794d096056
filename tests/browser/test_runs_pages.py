"""The runs pages in a real browser, on a live server (the embedded default, and in the services pass Celery,
PostgreSQL and Redis), over real runs: an LLM agent against the fake provider on loopback, calling a tool of a real
MCP server. The list's charts and totals, one run's tool call and timings, the phone layout, and axe. Screenshots
go to test-artifacts/ (named in the README's "Dashboard" section)."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.browser.test_chat_page import ARTIFACTS, browser  # noqa: F401  (the module's Chromium)
from tests.browser.test_dashboard_page import assert_no_sideways_scroll
from tests.support.live_server import LiveServer, service_env

pytestmark = pytest.mark.browser
ORG = "acme"
QUESTIONS = ["Weather in Paris?", "And a haiku?", "One more thing"]


@pytest.fixture(scope="module")
def site():
    from tests.support.fake_llm import FakeLLM
    from tests.support.mcp_server import ToolServer

    provider, tools = FakeLLM(), ToolServer()
    server = LiveServer(env={"AUTH_DISABLED": "0", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5",
                             "LLM_BASE_URL": provider.base_url, "OPENAI_API_KEY": "sk-browser",
                             "GUILDSITE_MCP_HOSTS": "127.0.0.1", **service_env()})
    server.migrate()
    server.manage("shell", "-c", "\n".join([
        "from guildsite.accounts import services as s",
        "boss = s.user_create(username='boss', password='boss-password-123')",
        f"s.organization_create(name='Acme', creator=boss, id={ORG!r})",
        "eve = s.user_create(username='eve', password='eve-password-123')",
        "s.organization_create(name='Elsewhere', creator=eve, id='elsewhere')"]))
    server.token = server.manage("mint_token", "boss").strip()
    server.start()
    spec = {"name": "Weather desk", "agents": [{
        "name": "Forecaster", "class_name": "guilds.agents.llm.LLMAgent",
        "properties": {"model": "gpt-4o-mini",
                       "mcp_servers": [{"name": "weather", "url": tools.url, "allowed_tools": ["forecast"]}]}}]}
    status, made = server.request("POST", "/catalog/blueprints/", {
        "name": "Weather", "version": "v1", "organization_id": ORG, "exposure": "organization", "spec": spec},
        headers=auth(server))
    assert status == 201, made
    server.blueprint_id = made["id"]
    yield server, provider, tools
    server.stop()
    tools.close()
    provider.close()


def auth(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def eventually(read, done, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    found = None
    while time.monotonic() < deadline:
        found = read()
        if done(found):
            return found
        time.sleep(0.1)  # a poll interval, within the deadline
    raise AssertionError(f"{what}: last seen {found}")


@pytest.fixture(scope="module")
def runs(site):
    """Three finished runs of the LLM agent: the first calls the forecast tool, then answers with its result."""
    from tests.support.fake_llm import Answer

    server, provider, tools = site
    status, guild = server.request("POST", f"/catalog/blueprints/{server.blueprint_id}/guilds",
                                   {"guild_name": "Weather desk", "user_id": "boss", "org_id": ORG}, headers=auth(server))
    assert status == 201, guild
    guild = eventually(lambda: server.request("GET", f"/api/guilds/{guild['id']}", headers=auth(server))[1],
                       lambda g: g.get("status") == "RUNNING", "the guild running")
    agent_id = guild["spec"]["agents"][0]["id"]
    provider.then(Answer(deltas=["Let me check. "], tool_calls=[
                      {"id": "call_1", "name": "forecast", "arguments": json.dumps({"city": "Paris"})}]),
                  Answer(deltas=["It is sunny ", "in Paris."]))
    made = []
    for question in QUESTIONS:
        status, sent = server.request("POST", f"/api/guilds/{guild['id']}/messages", {
            "format": "text", "payload": {"text": question}, "agent": agent_id}, headers=auth(server))
        assert status == 202, sent
        eventually(lambda run_id=sent["run_id"]: server.request("GET", f"/api/runs/{run_id}", headers=auth(server))[1],
                   lambda run: run.get("status") == "succeeded", f"the run of {question!r}")
        made.append(sent["run_id"])
    assert tools.calls == [("forecast", {"city": "Paris"})]
    return {"guild": guild, "agent_id": agent_id, "runs": made}


def signed_in_page(server: LiveServer, browser, path: str, **context):  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page(**context)
    page.goto(server.base + path)
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "boss-password-123")
    page.click("#sign-in button[type=submit]")
    expect(page).to_have_url(f"{server.base}{path}")
    return page


def test_the_runs_page_lists_real_runs_with_their_totals_and_charts(site, runs, browser):  # noqa: F811
    from playwright.sync_api import expect

    from tests.browser.accessibility import assert_accessible

    server, _, _ = site
    page = signed_in_page(server, browser, "/dashboard/runs/", viewport={"width": 1280, "height": 900})
    expect(page.locator("tr.run-row")).to_have_count(3)
    for run_id in runs["runs"]:
        expect(page.locator(f'tr.run-row[data-run-id="{run_id}"]')).to_contain_text("Succeeded")
    expect(page.locator("#run-totals [data-runs]")).to_have_text("3")
    for chart in ("runs", "tokens", "cost_usd"):
        bars = page.locator(f"#chart-{chart} svg rect.bar")
        assert bars.count() >= 1
    # Today's bar says its figure; its height is the chart's (today has every run).
    today = page.locator("#chart-runs svg rect.bar").last
    assert today.locator("title").text_content().endswith(": 3 runs")
    assert float(today.get_attribute("height")) == 120
    assert page.locator("#chart-runs svg").get_attribute("role") == "img"
    assert page.locator("#chart-tokens svg rect.bar").last.locator("title").text_content().endswith(" tokens")
    assert_accessible(page, "runs page")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-desktop.png"), full_page=True)

    # A filter by status that nothing matches, then back: it is in the address, so a bookmark keeps it.
    page.select_option("#f-status", "failed")
    page.click("#run-filters button[type=submit]")
    expect(page.locator("tr.run-row")).to_have_count(0)
    assert "status=failed" in page.url
    page.select_option("#f-status", "")
    page.select_option("#f-guild", runs["guild"]["id"])
    page.click("#run-filters button[type=submit]")
    expect(page.locator("tr.run-row")).to_have_count(3)

    phone = signed_in_page(server, browser, "/dashboard/runs/", viewport={"width": 375, "height": 800},
                           is_mobile=True, has_touch=True)
    expect(phone.locator("tr.run-row")).to_have_count(3)
    assert_no_sideways_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "runs-mobile.png"), full_page=True)
    page.close()
    phone.close()


def test_a_runs_page_shows_its_tool_call_with_input_and_output_and_its_timings(site, runs, browser):  # noqa: F811
    from playwright.sync_api import expect

    from tests.browser.accessibility import assert_accessible

    server, _, _ = site
    run_id = runs["runs"][0]
    page = signed_in_page(server, browser, "/dashboard/runs/", viewport={"width": 1280, "height": 900})
    page.click(f'tr.run-row[data-run-id="{run_id}"] a.code')
    expect(page).to_have_url(f"{server.base}/dashboard/runs/{run_id}/")
    expect(page.locator("#run-status")).to_contain_text("Succeeded")
    expect(page.locator("#run-facts")).to_contain_text("Weather desk")
    expect(page.locator("#run-facts")).to_contain_text("gpt-4o-mini")
    for timing in ("queue", "first-token", "total"):
        expect(page.locator(f"#timing-{timing}")).to_have_text(re.compile(r"^\d+ ms$"))
    call = page.locator("#tool-calls details").first
    expect(call.locator("summary")).to_contain_text("forecast")
    expect(call.locator("summary")).to_contain_text("ok")
    expect(call.locator(".tool-input")).to_be_hidden()  # collapsed until opened
    call.locator("summary").click()
    expect(call.locator(".tool-input")).to_contain_text('"city": "Paris"')
    expect(call.locator(".tool-output")).to_have_text("Sunny and 21 C in Paris")
    messages = page.locator("#run-messages")
    expect(messages).to_contain_text(QUESTIONS[0])
    expect(messages).to_contain_text("It is sunny in Paris.")
    expect(messages).not_to_contain_text(QUESTIONS[1])  # another run's
    expect(page.locator("#run-cancel")).to_have_count(0)  # it ended
    assert_accessible(page, "run page")
    page.screenshot(path=str(ARTIFACTS / "run-desktop.png"), full_page=True)

    phone = signed_in_page(server, browser, f"/dashboard/runs/{run_id}/", viewport={"width": 375, "height": 800},
                           is_mobile=True, has_touch=True)
    phone.locator("#tool-calls summary").first.click()
    expect(phone.locator(".tool-output").first).to_be_visible()
    assert_no_sideways_scroll(phone)
    phone.screenshot(path=str(ARTIFACTS / "run-mobile.png"), full_page=True)
    page.close()
    phone.close()


def test_a_running_run_is_cancelled_from_its_page_and_its_status_follows(site, runs, browser):  # noqa: F811
    from playwright.sync_api import expect

    from tests.support.fake_llm import Answer

    server, provider, _ = site
    provider.then(Answer(deltas=["A long ", "story ", "never ", "finished."], hold_after=2))
    status, sent = server.request("POST", f"/api/guilds/{runs['guild']['id']}/messages", {
        "format": "text", "payload": {"text": "Tell me a long story"}, "agent": runs["agent_id"]}, headers=auth(server))
    assert status == 202, sent
    eventually(lambda: server.request("GET", f"/api/runs/{sent['run_id']}", headers=auth(server))[1],
               lambda run: run.get("status") == "running", "the run running")
    # A run is "running" before it calls the model; a cancel then ends it with no call at all. This one is
    # about a call in progress, so the model's stream is open first.
    assert provider.holding.wait(15), "the model's stream never opened"
    page = signed_in_page(server, browser, f"/dashboard/runs/{sent['run_id']}/")
    expect(page.locator("#run-status")).to_contain_text("Running")
    page.click("#run-cancel")
    # The run_update on agent:{guild}:{agent} says it ended; the page is read again with its final figures.
    expect(page.locator("#run-status")).to_contain_text("Cancelled", timeout=15000)
    expect(page.locator("#run-cancel")).to_have_count(0)
    assert provider.hung_up.wait(10), "the provider's stream was not closed"
    page.close()
