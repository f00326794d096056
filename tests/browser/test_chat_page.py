"""The chat page in a real browser: launch the echo blueprint, chat, reload, stop."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.browser.accessibility import assert_accessible
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
    page.goto(server.base + "/chat/")
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
    # The same file again is stored under a free name, and its text is sent with it (a first try lost both).
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello again"}])
    page.fill("#text", "the file again")
    page.click("#send")
    expect(page.locator("#log li", has_text="notes (2).txt")).to_have_count(2)
    expect(page.locator("#log li", has_text="the file again").first).to_be_visible()
    expect(page.locator("#log li .who time").first).to_be_visible()  # each message says when
    assert_accessible(page, "the chat page")
    page.screenshot(path=str(ARTIFACTS / "chat-running.png"), full_page=True)
    page.click("#stop")
    expect(page.locator("#guild-status")).to_have_text("STOPPED", timeout=10000)
    expect(page.locator("#connection")).to_have_text("stopped")
    expect(page.locator("#text")).to_be_disabled()
    expect(page.locator("#stop")).to_be_disabled()  # nothing left to stop
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
    page.goto(server.base + "/chat/")
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
    expect(page.locator("#user-name")).to_have_value("alice")  # names come from accounts
    expect(page.locator("#user-name")).not_to_be_editable()
    page.click("#launch")
    expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
    expect(page.locator("#participants")).to_contain_text("alice (human)")
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
    page.goto(server.base + "/chat/")
    page.fill("#user-id", "browseruser")
    page.fill("#user-name", "Browser User")
    expect(page.locator("#blueprints option")).to_have_count(1)  # the picker has loaded
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


def test_the_first_try_list_names_blueprints_and_people_apart_fits_a_phone_and_has_a_favicon(server, browser):
    from playwright.sync_api import expect

    # A second blueprint of the same name and version that needs its own Redis.
    status, _ = server.request("POST", "/catalog/blueprints/", {
        "name": "EchoTestBlueprint", "version": "v1", "author_id": "other_author", "spec": {
            "name": "EchoTestBlueprint", "properties": {"messaging": {
                "backend_module": "rustic_ai.redis.messaging.backend", "backend_class": "RedisMessagingBackend",
                "backend_config": {"redis_client": {"host": "localhost", "port": 6379}}}},
            "agents": [{"name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"}]}})
    assert status == 201
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(server.base + "/chat/")
    expect(page.locator("#blueprints option")).to_have_count(2)
    labels = page.locator("#blueprints option").all_inner_texts()
    assert labels[0] != labels[1]  # told apart
    assert [label for label in labels if "needs Redis" in label] == [next(x for x in labels if "other_author" in x)]
    assert all("test_author" in label or "other_author" in label for label in labels)
    # Nobody is "Guest": the name starts as your user id.
    assert page.locator("#user-name").input_value() == page.locator("#user-id").input_value()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(server.base + icon).ok

    page.fill("#user-id", "twin-one")
    page.fill("#user-name", "Sam")
    page.select_option("#blueprints", index=next(i for i, label in enumerate(labels) if "test_author" in label))
    page.click("#launch")
    expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    guild_id = page.evaluate("new URLSearchParams(location.search).get('guild')")
    # Someone else called Sam joins: the two are told apart by their user ids.
    with connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/twin-two/Sam"):
        page.reload()
        expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
        expect(page.locator("#participants")).to_contain_text("Sam [twin-one] (human)")
        expect(page.locator("#participants")).to_contain_text("Sam [twin-two] (human)")
    page.screenshot(path=str(ARTIFACTS / "chat-mobile.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def llm_tools_site():
    from tests.support.fake_llm import FakeLLM
    from tests.support.mcp_server import ToolServer

    provider, tools = FakeLLM(), ToolServer()
    server = LiveServer(env={"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "LLM_BASE_URL": provider.base_url,
                             "OPENAI_API_KEY": "sk-browser", "GUILDSITE_MCP_HOSTS": "127.0.0.1", **service_env()})
    server.migrate()
    server.start()
    status, _ = server.request("POST", "/catalog/blueprints/", {
        "name": "ToolsBlueprint", "version": "v1", "author_id": "test_author", "spec": {
            "name": "ToolsBlueprint", "description": "A model with a weather tool",
            "agents": [{"name": "Assistant", "class_name": "guilds.agents.llm.LLMAgent",
                        "properties": {"mcp_servers": [{"name": "weather", "url": tools.url}]}}]}})
    assert status == 201
    yield server, provider, tools
    server.stop()
    provider.close()
    tools.close()


def test_conversations_new_switch_rename_delete_and_a_tool_call_shown(llm_tools_site, browser):
    from playwright.sync_api import expect

    from tests.support.fake_llm import Answer

    server, provider, tools = llm_tools_site
    provider.then(Answer(deltas=["Let me check. "], tool_calls=[
                      {"id": "call_1", "name": "forecast", "arguments": json.dumps({"city": "Paris"})}]),
                  Answer(deltas=["It is sunny ", "in Paris."]))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.base + "/chat/")
    page.fill("#user-id", "threaduser")
    expect(page.locator("#blueprints option")).to_have_count(1)  # the picker has loaded
    page.click("#launch")
    expect(page.locator("#connection")).to_have_text("ready", timeout=15000)
    expect(page.locator("#threads-panel")).to_be_visible()
    page.fill("#text", "Weather in Paris?")
    page.click("#send")
    answer = page.locator("#log li", has_text="It is sunny in Paris.")
    expect(answer).to_have_count(1, timeout=15000)
    tool = answer.locator("details.tool-output")
    expect(tool.locator("summary")).to_have_text("forecast")
    assert not tool.evaluate("box => box.open")  # folded until asked
    tool.locator("summary").click()
    expect(tool.locator("pre")).to_contain_text("Sunny and 21 C in Paris")
    assert tools.calls == [("forecast", {"city": "Paris"})]
    expect(page.locator("#threads li")).to_have_count(1)

    # A new conversation starts empty; its answer makes a second thread.
    page.click("#new-thread")
    expect(page.locator("#log li")).to_have_count(0)
    page.fill("#text", "Something else")
    page.click("#send")
    expect(page.locator("#log li", has_text="Hello from the fake model.")).to_have_count(1, timeout=15000)
    expect(page.locator("#threads li")).to_have_count(2)
    expect(page.locator("#log")).not_to_contain_text("Paris")

    # Back to the first: its messages, with the tool it used.
    page.locator("#threads li:not(.current) .thread-open").click()
    expect(page.locator("#log")).to_contain_text("Weather in Paris?")
    expect(page.locator("#log")).to_contain_text("It is sunny in Paris.")
    expect(page.locator("#log details.tool-output summary", has_text="forecast").first).to_be_visible()
    expect(page.locator("#log")).not_to_contain_text("Something else")

    page.once("dialog", lambda dialog: dialog.accept("Paris weather"))
    page.locator("#threads li.current .thread-rename").click()
    expect(page.locator("#threads li.current .thread-open")).to_have_text("Paris weather")
    assert_accessible(page, "the chat page with conversations")
    page.screenshot(path=str(ARTIFACTS / "chat-conversations.png"), full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#threads li.current .thread-delete").click()
    expect(page.locator("#threads li")).to_have_count(1)
    expect(page.locator("#log li")).to_have_count(0)
    page.close()
