"""The catalog pages in a real browser, on a live server (the embedded default, and in the services pass Celery,
PostgreSQL and Redis): creating a blueprint from the form (the API's validation message next to its field, then
fixed and saved), the JSON view, editing, launching a guild from a blueprint, the phone layout and axe. Screenshots
go to test-artifacts/ (named in the README's "Dashboard" section)."""

from __future__ import annotations

import re

import pytest

from tests.browser.accessibility import assert_accessible
from tests.browser.test_chat_page import ARTIFACTS, browser  # noqa: F401  (the module's Chromium)
from tests.support.live_server import LiveServer, service_env

pytestmark = pytest.mark.browser
ORG = "acme"
ECHO_CLASS = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"
ECHO = {"name": "Echo", "agents": [{"name": "EchoAgent", "class_name": ECHO_CLASS}]}
REDIS_ECHO = {**ECHO, "name": "Redis echo", "properties": {"messaging": {
    "backend_module": "rustic_ai.redis.messaging.backend", "backend_class": "RedisMessagingBackend",
    "backend_config": {"redis_client": {"host": "localhost", "port": 6379}}}}}


@pytest.fixture(scope="module")
def site():
    server = LiveServer(env={"AUTH_DISABLED": "0", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5", **service_env()})
    server.migrate()
    server.manage("shell", "-c", "\n".join([
        "from guildsite.accounts import services as s",
        "from catalog.services import agent_entry_register",
        f"agent_entry_register(qualified_class_name={ECHO_CLASS!r})",
        "boss = s.user_create(username='boss', password='boss-password-123')",
        f"s.organization_create(name='Acme', creator=boss, id={ORG!r})",
        "eve = s.user_create(username='eve', password='eve-password-123')",
        "s.organization_create(name='Elsewhere', creator=eve, id='elsewhere')"]))
    server.token = server.manage("mint_token", "boss").strip()
    eve_token = server.manage("mint_token", "eve").strip()
    server.start()
    server.blueprints = {}
    for name, spec, exposure in (("Echo", ECHO, "organization"), ("Redis echo", REDIS_ECHO, "shared")):
        status, made = server.request("POST", "/catalog/blueprints/", {
            "name": name, "version": "v1", "description": f"{name} for the catalog's tests", "organization_id": ORG,
            "exposure": exposure, "spec": spec}, headers=auth(server.token))
        assert status == 201, made
        server.blueprints[name] = made["id"]
    status, _ = server.request("POST", f"/catalog/blueprints/{server.blueprints['Redis echo']}/share/",
                               {"organization_id": "elsewhere"}, headers=auth(server.token))
    assert status == 204
    status, made = server.request("POST", "/catalog/blueprints/", {
        "name": "Eve's own", "organization_id": "elsewhere", "exposure": "private", "spec": ECHO},
        headers=auth(eve_token))
    assert status == 201, made
    server.blueprints["Eve's own"] = made["id"]
    yield server
    server.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed_in_page(server: LiveServer, browser, path: str = "/dashboard/catalog/", user: str = "boss",  # noqa: F811
                   **context):
    from playwright.sync_api import expect

    page = browser.new_page(**context)
    page.goto(server.base + path)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"{user}-password-123")
    page.click("#sign-in button[type=submit]")
    expect(page).to_have_url(server.base + path)
    return page


def assert_no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.clientWidth")
    wide = page.evaluate("""width => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > width + 1)
        .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)""", width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide


def test_the_catalog_lists_blueprints_and_agent_classes(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = signed_in_page(site, browser, viewport={"width": 1280, "height": 900})
    rows = page.locator("#blueprints tbody tr")
    expect(rows).to_have_count(2)  # not eve's private one
    redis_row = page.locator(f"tr[data-blueprint-id='{site.blueprints['Redis echo']}']")
    expect(redis_row.locator("td[data-label=Needs]")).to_have_text("needs Redis")
    expect(redis_row.locator("td[data-label='Shared with']")).to_have_text("elsewhere")
    expect(redis_row.locator("td[data-label=Exposure]")).to_have_text("shared")
    expect(redis_row.locator("a.edit")).to_be_visible()
    agent = page.locator("#agent-classes .agent-class", has_text=ECHO_CLASS)
    agent.locator("summary").click()
    expect(agent.locator("pre.json")).to_be_visible()
    assert_accessible(page, "catalog page")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "catalog-desktop.png"), full_page=True)
    page.close()


def test_creating_a_blueprint_shows_the_apis_message_at_its_field_then_saves(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = signed_in_page(site, browser, viewport={"width": 1280, "height": 900})
    page.click("#blueprint-new")
    expect(page).to_have_url(f"{site.base}/dashboard/catalog/blueprints/new/")
    page.fill("#bp-name", "Greeter")
    page.fill("#bp-version", "v2")
    page.fill("#bp-description", "Greets people")
    page.select_option("#bp-exposure", "organization")
    expect(page.locator("#agent-0-class")).to_have_value(ECHO_CLASS)
    page.fill("#agent-0-topics", "echo_topic, greetings")
    page.uncheck("#agent-0-default")
    page.click("#blueprint-save")  # the agent has no name: the API says so, next to that field
    error = page.locator("#agent-0-name-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("at least 1 character")
    expect(page.locator("#agent-0-name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#agent-0-name")).to_have_attribute("aria-describedby", "agent-0-name-error")
    expect(page.locator("#form-errors")).to_be_hidden()
    expect(page).to_have_url(f"{site.base}/dashboard/catalog/blueprints/new/")
    assert_accessible(page, "blueprint form")
    page.screenshot(path=str(ARTIFACTS / "blueprint-form-desktop.png"), full_page=True)

    # Invalid JSON in an agent's properties is caught before asking the API.
    page.fill("#agent-0-name", "Greeter agent")
    page.fill("#agent-0-properties", "{not json")
    page.click("#blueprint-save")
    expect(page.locator("#agent-0-properties-error")).to_contain_text("Not valid JSON")
    expect(page.locator("#agent-0-name-error")).to_have_count(0)
    page.fill("#agent-0-properties", "")

    # The JSON view holds the form's spec, and what is edited there comes back to the form.
    page.click("#mode-json")
    spec_text = page.locator("#spec-json-text")
    expect(spec_text).to_be_visible()
    assert '"Greeter agent"' in spec_text.input_value()
    spec_text.fill(spec_text.input_value().replace('"description": ""', '"description": "Says hello"', 1))
    page.click("#mode-form")
    expect(page.locator("#agent-0-description")).to_have_value("Says hello")
    expect(page.locator("#agent-0-topics")).to_have_value("echo_topic, greetings")

    page.click("#blueprint-save")
    expect(page).to_have_url(re.compile(r"/dashboard/catalog/blueprints/(?!new/)[^/]+/$"), timeout=15000)
    expect(page.locator("#toasts")).to_contain_text("Created Greeter")
    blueprint_id = page.url.rstrip("/").rsplit("/", 1)[1]
    status, saved = site.request("GET", f"/catalog/blueprints/{blueprint_id}", headers=auth(site.token))
    assert status == 200
    assert (saved["name"], saved["version"], saved["exposure"], saved["organization_id"], saved["author_id"]) == (
        "Greeter", "v2", "organization", ORG, "boss")
    agent = saved["spec"]["agents"][0]
    assert (agent["name"], agent["class_name"], agent["description"], agent["additional_topics"],
            agent["listen_to_default_topic"]) == ("Greeter agent", ECHO_CLASS, "Says hello", ["echo_topic", "greetings"], False)
    page.close()


def test_editing_a_blueprint(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    blueprint_id = site.blueprints["Echo"]
    page = signed_in_page(site, browser, path=f"/dashboard/catalog/blueprints/{blueprint_id}/")
    expect(page.locator("#bp-name")).to_have_value("Echo")
    expect(page.locator("#agent-0-name")).to_have_value("EchoAgent")
    page.fill("#bp-description", "An echo, edited")
    page.click("#agent-add")
    page.fill("#agent-1-name", "Second")
    # The API checks the guild's properties: an engine it does not know is named at that field.
    page.fill("#spec-properties", '{"execution_engine": "no.such.Engine"}')
    page.click("#blueprint-save")
    expect(page.locator("#spec-properties-error")).to_contain_text("unknown execution engine")
    page.fill("#spec-properties", "")
    page.click("#blueprint-save")
    expect(page.locator("#toasts")).to_contain_text("Saved Echo")
    expect(page.locator(".field-error")).to_have_count(0)
    page.reload()
    expect(page.locator("#bp-description")).to_have_value("An echo, edited")
    expect(page.locator("#agent-1-name")).to_have_value("Second")
    _, saved = site.request("GET", f"/catalog/blueprints/{blueprint_id}", headers=auth(site.token))
    assert [agent["name"] for agent in saved["spec"]["agents"]] == ["EchoAgent", "Second"]
    assert saved["spec"]["description"] == "An echo, edited"
    page.close()


def test_launching_a_guild_from_a_blueprint(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = signed_in_page(site, browser)
    row = page.locator(f"tr[data-blueprint-id='{site.blueprints['Echo']}']")
    row.locator("button.launch").click()
    expect(page.locator("#bp-launch-dialog")).to_be_visible()
    expect(page.locator("#bp-launch-org")).to_have_value(ORG)
    page.fill("#bp-launch-name", "From the catalog")
    page.click("#bp-launch-submit")
    link = page.locator("#launched-guild")
    expect(link).to_be_visible(timeout=15000)
    expect(page.locator("#toasts")).to_contain_text("Launched From the catalog")
    link.click()
    expect(page).to_have_url(re.compile(r"/dashboard/guilds/[^/]+/$"))
    expect(page.locator("h1")).to_contain_text("From the catalog")
    page.close()


def test_the_phone_layout_has_no_sideways_scroll(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    page = signed_in_page(site, browser, viewport={"width": 375, "height": 812}, is_mobile=True)
    expect(page.locator("#blueprints tbody tr").first).to_be_visible()
    # Cards: each cell says what it is (waited for: the stylesheet may still be on its way).
    page.wait_for_function("""getComputedStyle(document.querySelector('#blueprints td[data-label=Exposure]'),
                                                '::before').content === '"Exposure"'""")
    assert_no_sideways_scroll(page)
    assert_accessible(page, "catalog page (phone)")
    page.screenshot(path=str(ARTIFACTS / "catalog-mobile.png"), full_page=True)
    page.goto(f"{site.base}/dashboard/catalog/blueprints/{site.blueprints['Redis echo']}/")
    expect(page.locator("#agent-0-name")).to_have_value("EchoAgent")
    assert_no_sideways_scroll(page)
    assert_accessible(page, "blueprint form (phone)")
    page.screenshot(path=str(ARTIFACTS / "blueprint-form-mobile.png"), full_page=True)
    page.close()


def test_another_organisations_private_blueprint_is_not_found(site, browser):  # noqa: F811
    page = signed_in_page(site, browser)
    theirs = site.blueprints["Eve's own"]
    response = page.goto(f"{site.base}/dashboard/catalog/blueprints/{theirs}/")
    assert response.status == 404
    page.close()


def test_sharing_then_unsharing_and_deleting_a_blueprint(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    status, made = site.request("POST", "/catalog/blueprints/", {
        "name": "Short-lived", "organization_id": ORG, "exposure": "shared", "spec": {**ECHO, "name": "Short-lived"}},
        headers=auth(site.token))
    assert status == 201, made
    path = f"/catalog/blueprints/{made['id']}"
    page = signed_in_page(site, browser, path=f"/dashboard{path}/", viewport={"width": 1280, "height": 900})
    expect(page.locator("#shared-none")).to_be_visible()

    page.fill("#share-org", "nowhere")
    page.click("#share-submit")  # the API's answer, at the field
    expect(page.locator("#share-error")).to_contain_text("organisation 'nowhere' not found")
    expect(page.locator("#share-org")).to_have_attribute("aria-invalid", "true")
    page.fill("#share-org", "elsewhere")
    page.click("#share-submit")
    expect(page.locator("#shared-list li[data-organization=elsewhere]")).to_be_visible()
    expect(page.locator("#facts-shared-with")).to_have_text("elsewhere")
    expect(page.locator("#share-error")).to_have_text("")
    assert site.request("GET", path, headers=auth(site.token))[1]["shared_with"] == ["elsewhere"]
    assert_accessible(page, "blueprint sharing")
    page.locator("#blueprint-manage").screenshot(path=str(ARTIFACTS / "blueprint-sharing-desktop.png"))

    page.click("#shared-list button[aria-label='Stop sharing with elsewhere']")
    expect(page.locator("#shared-none")).to_be_visible()
    expect(page.locator("#facts-shared-with")).to_have_text("—")
    assert site.request("GET", path, headers=auth(site.token))[1]["shared_with"] == []

    page.click("#blueprint-delete")
    expect(page.locator("#bp-delete-dialog")).to_be_visible()
    expect(page.locator("#bp-delete-dialog .cancel")).to_be_focused()  # Enter at once deletes nothing
    page.click("#bp-delete-dialog .cancel")  # nothing happens without the confirmation
    expect(page.locator("#bp-delete-dialog")).to_be_hidden()
    assert site.request("GET", path, headers=auth(site.token))[0] == 200
    page.click("#blueprint-delete")
    page.click("#bp-delete-confirm")
    expect(page).to_have_url(f"{site.base}/dashboard/catalog/")
    expect(page.locator("#toasts")).to_contain_text("Deleted Short-lived")
    expect(page.locator(f"tr[data-blueprint-id='{made['id']}']")).to_have_count(0)
    assert site.request("GET", path, headers=auth(site.token))[0] == 404
    page.close()


def test_a_reader_who_may_not_change_a_blueprint_gets_no_sharing_or_delete(site, browser):  # noqa: F811
    from playwright.sync_api import expect

    shared = site.blueprints["Redis echo"]  # shared with eve's organisation: she reads it
    page = signed_in_page(site, browser, path=f"/dashboard/catalog/blueprints/{shared}/", user="eve")
    expect(page.locator("#spec-readonly")).to_be_visible()
    expect(page.locator("#blueprint-manage")).to_have_count(0)
    expect(page.locator("#blueprint-delete")).to_have_count(0)
    page.close()
