"""The chat page in a real browser: launch the echo blueprint, chat, reload, stop."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
