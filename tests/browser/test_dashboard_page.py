"""The dashboard in a real browser, on a live server (the embedded default, and in the services pass Celery,
PostgreSQL and Redis): live status, search, sort, keys, the phone layout, launching, stopping, run now,
pausing a schedule, an external agent's presence, and the guild page's message browser. Screenshots go to
test-artifacts/ (named in the README's "Dashboard" section)."""

from __future__ import annotations

import json
import re
import time

import pytest
from websockets.sync.client import connect

from tests.browser.accessibility import assert_accessible
from tests.browser.test_chat_page import ARTIFACTS, browser  # noqa: F401  (the module's Chromium)
from tests.support.live_server import LiveServer, service_env

pytestmark = pytest.mark.browser
ORG = "acme"
ECHO = {"name": "Echo guild",
        "agents": [{"name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"}]}


@pytest.fixture(scope="module")
def site():
    server = LiveServer(env={"AUTH_DISABLED": "0", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5",
                             "GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS": "0.5", "GUILDSITE_EXTERNAL_MISSED_HEARTBEATS": "120",
                             **service_env()})
    server.migrate()
    server.manage("shell", "-c", "\n".join([
        "from guildsite.accounts import services as s",
        "boss = s.user_create(username='boss', password='boss-password-123')",
        f"s.organization_create(name='Acme', creator=boss, id={ORG!r})",
        "eve = s.user_create(username='eve', password='eve-password-123')",
        "s.organization_create(name='Elsewhere', creator=eve, id='elsewhere')",
        "s.organization_create(name='Labs', creator=boss, id='labs')"]))
    token = server.manage("mint_token", "boss").strip()
    server.start()
    server.token = token
    status, made = server.request("POST", "/catalog/blueprints/", {
        "name": "Echo", "version": "v1", "organization_id": ORG, "exposure": "organization", "spec": ECHO},
        headers=server_auth(server))
    assert status == 201, made
    server.blueprint_id = made["id"]
    yield server
    server.stop()


def server_auth(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def launch(server: LiveServer, name: str) -> str:
    status, made = server.request("POST", f"/catalog/blueprints/{server.blueprint_id}/guilds",
                                  {"guild_name": name, "user_id": "boss", "org_id": ORG}, headers=server_auth(server))
    assert status == 201, made
    return made["id"]


def reaches(server: LiveServer, guild_id: str, status: str) -> dict:
    return server.guild_reaches(guild_id, status, headers=server_auth(server))


def signed_in_page(server: LiveServer, browser, before=None, **context):  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_page(**context)
    if before is not None:
        before(page)
    page.goto(server.base + "/")
    expect(page).to_have_url(f"{server.base}/accounts/login/?next=/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "boss-password-123")
    page.click("#sign-in button[type=submit]")
    expect(page).to_have_url(f"{server.base}/dashboard/")
    expect(page.locator("body")).to_have_attribute("data-live", "connected", timeout=15000)
    return page


def assert_no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.clientWidth")
    wide = page.evaluate("""width => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > width + 1)
        .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)""", width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide


def names_in_order(page) -> list[str]:
    return page.locator("tbody.guild:not([hidden]) a.guild-name").all_inner_texts()


@pytest.fixture(scope="module")
def guilds(site):
    made = {name: launch(site, name) for name in ("Alpha", "Beta", "Gamma")}
    for guild_id in made.values():
        reaches(site, guild_id, "RUNNING")
    return made


def test_search_sort_keys_and_a_status_change_without_reload(site, guilds, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = signed_in_page(site, browser, viewport={"width": 1280, "height": 900})
    page.evaluate("window.notReloaded = true")
    expect(page.locator("tbody.guild")).to_have_count(3)
    expect(page.locator("#org")).to_have_value(ORG)
    assert page.locator("#org option").all_inner_texts() == ["Acme (acme)", "Labs (labs)"]  # not eve's

    # Live search, then Esc.
    page.keyboard.press("Control+k")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("bet")
    assert names_in_order(page) == ["Beta"]
    page.keyboard.type("x")
    expect(page.locator("#no-match")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#search")).to_have_value("")
    assert len(names_in_order(page)) == 3

    # Sort by name, then the other way.
    name_header = page.locator("button.sort[data-key=name]")
    name_header.click()
    assert names_in_order(page) == ["Alpha", "Beta", "Gamma"]
    expect(name_header).to_have_attribute("data-arrow", "▲")
    expect(page.locator("th", has=name_header)).to_have_attribute("aria-sort", "ascending")
    name_header.click()
    assert names_in_order(page) == ["Gamma", "Beta", "Alpha"]
    expect(name_header).to_have_attribute("data-arrow", "▼")

    # ⌘+K too (macOS); then ↓ to the first row, ↓↑ back to it, Enter shows its agents, ↓ onto the agent, R asks
    # what to send it.
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Meta+k")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowDown")
    gamma = page.locator(f"#guild-{guilds['Gamma']}")
    expect(gamma.locator(".guild-row")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"#guild-{guilds['Beta']} .guild-row")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(gamma.locator(".guild-row")).to_be_focused()
    page.keyboard.press("Enter")
    expect(gamma.locator(".agent-row")).to_be_visible()
    expect(gamma.locator(".guild-row button.expand")).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("ArrowDown")
    expect(gamma.locator(".agent-row")).to_be_focused()
    page.keyboard.press("r")
    expect(page.locator("#prompt-dialog")).to_be_visible()
    page.fill("#prompt-text", "Hello from the dashboard")
    page.click("#prompt-send")
    expect(page.locator("#toasts")).to_contain_text("Sent to EchoAgent")
    expect(page.locator("#prompt-dialog")).to_be_hidden()
    # Its run shows in its row and its guild's as it happens (run_update on the guild's topic, followed on expand).
    expect(gamma.locator(".agent-row td[data-label='Last run'] .pill")).to_have_text("succeeded", timeout=15000)
    expect(gamma.locator(".guild-row td[data-label='Last run'] .pill")).to_have_text("succeeded")

    # The agent's run shows in its row (run_update on the guild's topic, followed since it was expanded).
    # A status change made elsewhere shows without a reload.
    status, _ = site.request("POST", f"/api/guilds/{guilds['Beta']}/stop", {"user_id": "boss"}, headers=server_auth(site))
    assert status in (200, 202)
    beta = page.locator(f"#guild-{guilds['Beta']}")
    expect(beta.locator(".guild-row .pill.status")).to_have_text("STOPPED", timeout=15000)
    expect(beta.locator("button.stop")).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    ARTIFACTS.mkdir(exist_ok=True)
    assert_accessible(page, "the dashboard")
    page.screenshot(path=str(ARTIFACTS / "dashboard-desktop.png"), full_page=True)

    # N opens the launch dialog; the new guild is in the table.
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("n")
    expect(page.locator("#launch-dialog")).to_be_visible()
    page.fill("#launch-name", "Delta")
    page.click("#launch-submit")
    expect(page.locator("a.guild-name", has_text="Delta")).to_be_visible(timeout=15000)
    expect(page.locator("#toasts")).to_contain_text("Launched Delta")
    delta = page.locator("tbody.guild", has=page.locator("a.guild-name", has_text="Delta"))
    expect(delta.locator(".guild-row .pill.status")).to_have_text("RUNNING", timeout=30000)
    page.close()


def test_a_lost_connection_shows_a_banner_and_comes_back_with_the_missed_changes(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    guild_id = launch(site, "Unwatched")
    reaches(site, guild_id, "RUNNING")
    network = {"down": False, "sockets": []}

    def relay(socket) -> None:  # the page's /api/ws passes through here, so the test can cut it
        if network["down"]:
            socket.close(code=1006)
            return
        socket.connect_to_server()
        network["sockets"].append(socket)

    page = signed_in_page(site, browser, before=lambda p: p.route_web_socket(re.compile(r".*/api/ws$"), relay))
    network["down"] = True
    network["sockets"][-1].close(code=1006)
    expect(page.locator("#connection-banner")).to_be_visible(timeout=15000)
    expect(page.locator("body")).to_have_attribute("data-live", "disconnected")
    status, _ = site.request("POST", f"/api/guilds/{guild_id}/stop", {"user_id": "boss"}, headers=server_auth(site))
    assert status in (200, 202)
    reaches(site, guild_id, "STOPPED")  # while the page could not hear it
    network["down"] = False
    expect(page.locator("#connection-banner")).to_be_hidden(timeout=30000)
    expect(page.locator(f"#guild-{guild_id} .guild-row .pill.status")).to_have_text("STOPPED", timeout=15000)
    page.close()


def test_stop_from_the_table(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    guild_id = launch(site, "Stoppable")
    reaches(site, guild_id, "RUNNING")
    page = signed_in_page(site, browser)
    # Its guild page, open meanwhile in another window, hears the move: a new first line of its health timeline.
    details = signed_in_page(site, browser)
    details.goto(f"{site.base}/dashboard/guilds/{guild_id}/")
    expect(details.locator("#health-timeline li").first).to_contain_text("RUNNING")
    expect(details.locator("body")).to_have_attribute("data-live", "connected")
    details.evaluate("window.notReloaded = true")
    row = page.locator(f"#guild-{guild_id}")
    row.locator("button.stop").click()
    expect(row.locator(".guild-row .pill.status")).to_have_text("STOPPED", timeout=15000)
    expect(page.locator("#toasts")).to_contain_text("Stopping the guild")
    assert reaches(site, guild_id, "STOPPED")
    expect(details.locator("#health-timeline li").first).to_contain_text("STOPPED", timeout=15000)
    expect(details.locator("#health-timeline li").nth(1)).to_contain_text("RUNNING")
    assert details.evaluate("window.notReloaded === true")
    details.close()
    expect(row.locator("button.stop")).to_be_hidden()
    expect(row.locator("button.relaunch")).to_be_hidden()  # stopped is final: launch a new one
    row.locator("button.expand").click()
    expect(row.locator("button.run-now").first).to_be_disabled()  # nothing runs to answer
    page.close()


def test_run_now_and_pausing_a_schedule(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    guild_id = launch(site, "Scheduled")
    reaches(site, guild_id, "RUNNING")
    status, schedule = site.request("POST", f"/api/guilds/{guild_id}/schedules", {
        "agent": "EchoAgent", "cron": "0 3 * * *", "payload": {"text": "nightly"}}, headers=server_auth(site))
    assert status == 201, schedule
    page = signed_in_page(site, browser)
    group = page.locator(f"#guild-{guild_id}")
    group.locator("button.expand").click()
    agent_row = group.locator(".agent-row")
    expect(agent_row.locator("td.next-run time")).to_be_visible()

    agent_row.locator("button.run-now").click()
    expect(page.locator("#toasts")).to_contain_text("Running EchoAgent now")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, fired = site.request("GET", f"/api/schedules/{schedule['id']}", headers=server_auth(site))
        if fired["last_run_at"]:
            break
        time.sleep(0.1)  # a poll interval, within the deadline
    assert fired["last_run_at"], "run now did not fire the schedule"

    agent_row.locator("button.pause").click()
    expect(agent_row.locator("button.pause")).to_have_text("Resume")
    expect(agent_row.locator("td.next-run")).to_have_text("paused")
    _, paused = site.request("GET", f"/api/schedules/{schedule['id']}", headers=server_auth(site))
    assert paused["enabled"] is False
    agent_row.locator("button.pause").click()
    expect(agent_row.locator("button.pause")).to_have_text("Pause")
    _, resumed = site.request("GET", f"/api/schedules/{schedule['id']}", headers=server_auth(site))
    assert resumed["enabled"] is True
    page.close()


def test_an_external_agent_goes_online_and_offline_in_the_table(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    status, made = site.request("POST", "/api/external-agents", {"organization_id": ORG, "name": "Outside"},
                                headers=server_auth(site))
    assert status == 201, made
    # A guild that seats it: its row in the guild's agents follows the agent's presence too.
    spec = {"name": "Seated", "agents": [{"id": "helper", "name": "Helper", "class_name": "guilds.agents.external.ExternalAgent",
                                           "properties": {"registration_id": made["id"]}}]}
    status, blueprint = site.request("POST", "/catalog/blueprints/", {
        "name": "Seated", "version": "v1", "organization_id": ORG, "exposure": "organization", "spec": spec},
        headers=server_auth(site))
    assert status == 201, blueprint
    status, seated = site.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                  {"guild_name": "Seated", "user_id": "boss", "org_id": ORG}, headers=server_auth(site))
    assert status == 201, seated
    page = signed_in_page(site, browser)
    row = page.locator(f"#external-agents tr[data-external-id='{made['id']}']")
    expect(row.locator(".pill.status")).to_have_text("offline")
    page.locator(f"#guild-{seated['id']} button.expand").click()
    seat = page.locator(f"#guild-{seated['id']} tr.agent-row[data-external-id='{made['id']}']")
    expect(seat.locator(".pill.status")).to_have_text("offline")
    with connect(f"{site.ws_base}/ws/agents/", additional_headers={"Authorization": f"Bearer {made['key']}"}) as agent:
        agent.send(json.dumps({"type": "register", "name": "Outside", "version": "1.0", "hostname": "box"}))
        assert json.loads(agent.recv(timeout=10))["type"] == "registered"
        expect(row.locator(".pill.status")).to_have_text("online", timeout=15000)
        expect(seat.locator(".pill.status")).to_have_text("online", timeout=15000)
    expect(row.locator(".pill.status")).to_have_text("offline", timeout=15000)
    expect(seat.locator(".pill.status")).to_have_text("offline", timeout=15000)
    page.close()


def test_the_phone_layout_has_no_sideways_scroll(site, guilds, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = signed_in_page(site, browser, viewport={"width": 375, "height": 812}, is_mobile=True)
    expect(page.locator("tbody.guild").first).to_be_visible()
    page.locator("tbody.guild button.expand").first.click()
    assert_no_sideways_scroll(page)
    # Cards: each cell says what it is.
    page.wait_for_function("""getComputedStyle(document.querySelector('tbody.guild .guild-row td[data-label=Status]'),
                                                '::before').content === '"Status"'""")
    assert_accessible(page, "the dashboard on a phone")
    page.screenshot(path=str(ARTIFACTS / "dashboard-mobile.png"), full_page=True)
    page.goto(f"{site.base}/dashboard/guilds/{guilds['Alpha']}/")
    expect(page.locator("#messages li").first).to_be_visible(timeout=15000)
    assert_no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / "dashboard-guild-mobile.png"), full_page=True)
    page.close()


def test_the_guild_page_browses_messages_by_topic_sender_and_format(site, guilds, browser):  # noqa: F811
    from playwright.sync_api import expect

    guild_id = guilds["Alpha"]
    status, _ = site.request("POST", f"/api/guilds/{guild_id}/messages",
                             {"format": "text", "payload": {"text": "browse me"}}, headers=server_auth(site))
    assert status == 202
    page = signed_in_page(site, browser, viewport={"width": 1280, "height": 900})
    page.goto(f"{site.base}/dashboard/guilds/{guild_id}/")
    expect(page.locator("#agents")).to_contain_text("EchoAgent")
    expect(page.locator("#participants")).to_contain_text("boss")
    # Its status moves, however many health reports its status topic holds since.
    expect(page.locator("#health-timeline li").first).to_contain_text("RUNNING")

    messages = page.locator("#messages li.message")
    expect(page.locator("#filter-topic option", has_text="guild_status_topic")).to_have_count(1)
    page.select_option("#filter-topic", "default_topic")
    page.click("#message-filters button[type=submit]")
    expect(messages.filter(has_text="browse me")).to_have_count(1, timeout=15000)
    page.fill("#filter-sender", "nobody-sent-this")
    page.click("#message-filters button[type=submit]")
    expect(page.locator("#messages")).to_contain_text("No message matches")
    page.fill("#filter-sender", "boss")
    page.fill("#filter-format", "text")
    page.click("#message-filters button[type=submit]")
    expect(messages.filter(has_text="browse me")).to_have_count(1)
    page.fill("#filter-format", "ChatCompletionRequest")
    page.click("#message-filters button[type=submit]")
    expect(page.locator("#messages")).to_contain_text("No message matches")
    # Paging back through more than a page (25) of boss's messages.
    for n in range(30):
        status, _ = site.request("POST", f"/api/guilds/{guild_id}/messages",
                                 {"format": "text", "payload": {"text": f"page me {n}"}}, headers=server_auth(site))
        assert status == 202
    page.fill("#filter-format", "")
    page.select_option("#filter-topic", "default_topic")
    page.click("#message-filters button[type=submit]")
    expect(messages.filter(has_text="page me 29")).to_have_count(1, timeout=15000)
    expect(messages).to_have_count(25)
    first_page = messages.all_inner_texts()
    page.click("#messages-older")
    expect(messages.filter(has_text="browse me")).to_have_count(1, timeout=15000)
    expect(messages.filter(has_text="page me 0")).to_have_count(1)
    assert messages.all_inner_texts()[:25] == first_page  # older ones appended below
    assert len(set(messages.all_inner_texts())) == messages.count()  # none twice
    assert_accessible(page, "a guild's dashboard page")
    page.screenshot(path=str(ARTIFACTS / "dashboard-guild-desktop.png"), full_page=True)
    page.close()


def test_switching_organisation_and_signing_out(site, guilds, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = signed_in_page(site, browser)
    page.select_option("#org", "labs")
    expect(page).to_have_url(f"{site.base}/dashboard/?org=labs")
    expect(page.locator("#no-guilds")).to_contain_text("No guilds yet")
    expect(page.locator("h1")).to_contain_text("Labs")
    assert_accessible(page, "the dashboard of an organisation with no guild")
    page.screenshot(path=str(ARTIFACTS / "dashboard-first-run.png"), full_page=True)
    page.click("#sign-out")
    expect(page).to_have_url(f"{site.base}/accounts/login/")
    page.goto(f"{site.base}/dashboard/")
    expect(page).to_have_url(f"{site.base}/accounts/login/?next=/dashboard/")
    page.close()


def test_another_organisations_guild_page_is_not_found(site, guilds, browser):  # noqa: F811
    page = browser.new_page()
    page.goto(site.base + "/accounts/login/")
    assert_accessible(page, "the sign-in page")
    page.fill("input[name=username]", "eve")
    page.fill("input[name=password]", "eve-password-123")
    page.click("#sign-in button[type=submit]")
    response = page.goto(f"{site.base}/dashboard/guilds/{guilds['Alpha']}/")
    assert response.status == 404
    page.goto(f"{site.base}/dashboard/")
    assert "Alpha" not in page.content()
    page.close()
