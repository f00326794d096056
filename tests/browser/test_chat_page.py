"""The chat page in a real browser: launch the echo blueprint, chat, reload, stop."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.live_server import LiveServer, service_env

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server():
    server = LiveServer(env={"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", **service_env()})
    server.migrate()
    server.start()
    status, _ = server.request("POST", "/catalog/blueprints/", {
        "name": "EchoTestBlueprint", "version": "v1", "author_id": "test_author", "spec": {
            "name": "EchoTestBlueprint", "description": "Echo agent for integration testing",
            "agents": [{"name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
                        "additional_topics": ["echo_topic"], "listen_to_default_topic": False}]}})
    assert status == 201
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("REQUIRE_SERVICES"):
            pytest.fail("Chromium is required (REQUIRE_SERVICES=1): apt-get install chromium")
        pytest.skip("no Chromium on this machine: apt-get install chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield browser
        browser.close()


def test_launch_chat_reload_and_stop_in_the_browser(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(server.base + "/")
    page.fill("#user-id", "browseruser")
    page.fill("#user-name", "Browser User")
    expect(page.locator("#blueprints option")).to_have_count(1)
    page.click("#launch")

    expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
    expect(page.locator("#guild-status")).to_have_text("RUNNING")
    expect(page.locator("#participants")).to_contain_text("EchoAgent (bot)")
    expect(page.locator("#participants")).to_contain_text("Browser User (human)")
    expect(page.locator("#health tbody")).to_contain_text("ok")

    page.fill("#text", "Hello Echo!")
    page.click("#send")
    expect(page.locator("#log")).to_contain_text("Echo: Hello Echo!")
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello file"}])
    page.fill("#text", "a file")
    page.click("#send")
    expect(page.locator("#log li", has_text="notes.txt")).to_have_count(2)  # mine, and the echo

    page.reload()
    expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
    expect(page.locator("#log")).to_contain_text("Hello Echo!")
    expect(page.locator("#log")).to_contain_text("Echo: Hello Echo!")
    assert page.locator("#log li", has_text="Echo: Hello Echo!").count() == 1  # history once, not twice
    link = page.locator("#log a", has_text="notes.txt").first
    response = page.request.get(server.base + link.get_attribute("href"))
    assert response.ok
    assert response.body() == b"hello file"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-running.png"), full_page=True)
    page.click("#stop")
    expect(page.locator("#guild-status")).to_have_text("STOPPED", timeout=10000)
    expect(page.locator("#connection")).to_have_text("stopped")
    expect(page.locator("#text")).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "chat-stopped.png"), full_page=True)


@pytest.fixture(scope="module")
def authenticated_server():
    """Authentication on: alice (a member of acme, with a password) and acme's echo blueprint."""
    server = LiveServer(env={"AUTH_DISABLED": "0", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5", **service_env()})
    server.migrate()
    server.manage("create_user", "alice", "--password-stdin", stdin="alice-password-1\n")
    server.manage("create_user", "boss", "--password-stdin", stdin="boss-password-1\n")
    server.manage("create_organization", "Acme", "--id", "acme", "--admin", "boss")
    server.manage("add_member", "acme", "alice", "--role", "member")
    token = server.manage("mint_token", "boss").strip()
    server.start()
    status, body = server.request("POST", "/catalog/blueprints/", {
        "name": "EchoTestBlueprint", "version": "v1", "organization_id": "acme", "exposure": "organization",
        "spec": {"name": "EchoTestBlueprint", "agents": [
            {"name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
             "additional_topics": ["echo_topic"], "listen_to_default_topic": False}]}},
        headers={"Authorization": f"Bearer {token}"})
    assert status == 201, body
    server.boss_token = token
    yield server
    server.stop()


def test_signed_in_chat_launches_into_the_users_organisation(authenticated_server, browser):
    from playwright.sync_api import expect

    server = authenticated_server
    page = browser.new_page()
    page.goto(server.base + "/")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#pick")).to_have_count(0)
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "not her password")
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#sign-in .error")).to_contain_text("did not match")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-password-1")
    page.click("#sign-in button[type=submit]")

    expect(page.locator("#signed-in")).to_contain_text("Signed in as alice")
    expect(page.locator("#user-id")).to_have_value("alice")
    expect(page.locator("#organizations option")).to_have_text(["Acme (member)"])
    page.fill("#user-name", "Alice A.")
    page.click("#launch")
    expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
    expect(page.locator("#participants")).to_contain_text("Alice A. (human)")
    page.fill("#text", "Hello Echo!")
    page.click("#send")
    expect(page.locator("#log")).to_contain_text("Echo: Hello Echo!")

    guild_id = page.evaluate("new URLSearchParams(location.search).get('guild')")
    # A message naming a file with a javascript: URL (from another tab, an agent, anyone) shows no link.
    alice = server.manage("mint_token", "alice").strip()
    with connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/alice/Alice?token={alice}") as other_tab:
        other_tab.send(json.dumps({"format": "rustic_ai.core.ui_protocol.types.FilesWithTextFormat", "payload": {
            "text": "look", "files": [{"name": "evil", "url": "javascript:alert(document.cookie)"},
                                      {"name": "elsewhere", "url": "https://evil.example/x"}]}}))
        expect(page.locator("#log li", has_text="[file: evil]")).to_have_count(2)  # mine, and the echo
    assert page.locator("#log a", has_text="evil").count() == 0
    assert page.locator("#log a", has_text="elsewhere").count() == 0
    status, guild = server.request("GET", f"/api/guilds/{guild_id}", headers={"Authorization": f"Bearer {server.boss_token}"})
    assert status == 200
    assert (guild["organization_id"], guild["user_id"]) == ("acme", "alice")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-signed-in.png"), full_page=True)

    page.click("#sign-out button")
    expect(page.locator("#sign-in")).to_be_visible()
    # Signed out, the page's socket would be refused with 4401: the site no longer knows who this is.
    status, _ = server.request("GET", "/api/guilds")
    assert status == 401


def test_the_api_docs_authorize_button_makes_calls_as_the_token_holder(authenticated_server, browser):
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(authenticated_server.base + "/api/docs/")
    page.click("button.authorize")
    page.locator(".auth-container", has_text="bearerAuth").locator("input").fill(authenticated_server.boss_token)
    page.locator(".auth-container", has_text="bearerAuth").locator("button.authorize").click()
    page.click("button.btn-done")
    operation = page.locator("#operations-auth-me")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200",
                                                                                                 timeout=10000)
    expect(operation.locator(".live-responses-table tbody pre").first).to_contain_text('"username": "boss"')


@pytest.fixture(scope="module")
def llm_site():
    from tests.support.fake_llm import FakeLLM

    provider = FakeLLM()
    server = LiveServer(env={"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "LLM_BASE_URL": provider.base_url,
                             "OPENAI_API_KEY": "sk-browser", **service_env()})
    server.migrate()
    server.start()
    status, _ = server.request("POST", "/catalog/blueprints/", {
        "name": "LLMChatBlueprint", "version": "v1", "author_id": "test_author", "spec": {
            "name": "LLMChatBlueprint", "description": "Chat with a model",
            "agents": [{"name": "Assistant", "class_name": "guilds.agents.llm.LLMAgent"}]}})
    assert status == 201
    yield server, provider
    server.stop()
    provider.close()


def test_the_chat_page_streams_an_llm_agents_answer_live_shows_it_once_and_stops_it_on_request(llm_site, browser):
    from playwright.sync_api import expect

    from tests.support.fake_llm import Answer

    server, provider = llm_site
    provider.then(Answer(deltas=[f"part{i} " for i in range(30)]),
                  Answer(deltas=["Once ", "upon ", "a ", "time."], hold_after=2))
    page = browser.new_page()
    page.goto(server.base + "/")
    page.fill("#user-id", "browseruser")
    page.fill("#user-name", "Browser User")
    page.click("#launch")
    expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
    page.fill("#text", "Hello model")
    page.click("#send")
    answer = "".join(f"part{i} " for i in range(30)).strip()
    expect(page.locator("#log li", has_text="Assistant")).to_have_count(1, timeout=15000)
    expect(page.locator("#log")).to_contain_text(answer)
    expect(page.locator("#log li.streaming")).to_have_count(0)  # the reply took the streamed answer's place
    assert "chunk_type" not in page.locator("#log").inner_text()

    page.fill("#text", "Tell me a story")
    page.click("#send")
    streaming = page.locator("#log li.streaming")
    expect(streaming).to_contain_text("Once upon", timeout=15000)  # live: the model has not finished
    streaming.locator(".stop-run").click()
    expect(page.locator("#log li", has_text="Once upon")).to_have_count(1)
    expect(page.locator("#log li.streaming")).to_have_count(0, timeout=10000)
    expect(page.locator("#log .stop-run")).to_have_count(0)
    assert provider.hung_up.wait(10), "the provider's stream was not closed"
    expect(page.locator("#log li", has_text="Assistant")).to_have_count(2)
    expect(page.locator("#log li", has_text="Once upon")).to_have_count(1)  # the reply took the stream's place
    expect(page.locator("#log")).not_to_contain_text("time.")  # what the model never sent
    page.close()
