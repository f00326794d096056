"""Seed 004's live socket (/api/ws) against a real server with a real client: authentication, subscribe and
unsubscribe with their answers, every event type on its topic, refusals that leave the socket usable, the
heartbeat (4408) and the topic cap. The embedded pass runs it on the in-process engine, the services pass on
Celery workers over Redis."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import REPORT, receive_until, sign_in
from tests.support.fake_llm import FakeLLM
from tests.support.live_client import LiveClient
from tests.support.live_server import LiveServer, service_env

MAX_TOPICS = 6
PONG_TIMEOUT = 2.0
ORG = "testorg456"
AGENT = "assistant"


@pytest.fixture(scope="module")
def provider():
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(provider):
    server = LiveServer(env={
        "AUTH_DISABLED": "0", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "GUILDSITE_HEARTBEAT_TIMEOUT": "3",
        "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "gpt-4o-mini", "OPENAI_API_KEY": "sk-e2e-key",
        "GUILDSITE_WS_PING_SECONDS": "1", "GUILDSITE_WS_PONG_TIMEOUT_SECONDS": str(PONG_TIMEOUT),
        "GUILDSITE_WS_MAX_TOPICS": str(MAX_TOPICS), **service_env()})
    server.migrate()
    server.manage("create_user", "testuser123", "--staff", "--password-stdin", stdin="seed-password-123\n")
    server.manage("create_user", "mallory", "--password-stdin", stdin="mallory-password-123\n")
    server.manage("create_organization", "Test org", "--id", ORG, "--admin", "testuser123")
    server.manage("add_member", ORG, "mallory", "--role", "member")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(server):
    return {"testuser123": sign_in(server, "testuser123", "seed-password-123"),
            "mallory": sign_in(server, "mallory", "mallory-password-123")}


def live(server: LiveServer, token: str | None, **options) -> LiveClient:
    return LiveClient(f"{server.ws_base}/api/ws" + (f"?token={token}" if token else ""), **options)


def launch(server: LiveServer, token: str, name: str = "LiveGuild") -> str:
    headers = {"Authorization": f"Bearer {token}"}
    spec = {"name": name, "description": "An LLM agent",
            "agents": [{"id": AGENT, "name": "Assistant", "description": "Answers with a model",
                        "class_name": "guilds.agents.llm.LLMAgent", "additional_topics": ["llm_topic"],
                        "listen_to_default_topic": False}]}
    status, created = server.request("POST", "/catalog/blueprints/", {
        "name": name, "description": "An LLM agent", "version": "v1", "author_id": "test_author",
        "organization_id": ORG, "exposure": "private", "spec": spec}, headers=headers)
    assert status == 201, created
    status, launched = server.request("POST", f"/catalog/blueprints/{created['id']}/guilds",
                                      {"guild_name": name, "user_id": "testuser123", "org_id": ORG}, headers=headers)
    assert status == 201, launched
    return launched["id"]


def ask(user, text: str) -> dict:
    """Send a chat message on the seed's user socket; the agent's reply."""
    user.send(json.dumps({"id": "msg123", "format": "text", "payload": {"text": text},
                          "conversationId": "conv_789", "timestamp": "2025-01-15T10:00:00.000Z"}))
    return receive_until(user, lambda f: f["format"] == "text" and f["sender"]["name"] == "Assistant", timeout=20)


def test_without_a_credential_or_with_a_bad_one_the_socket_is_closed_4401(server):
    for token in (None, "not-a-token", "gsk_unknownkey"):
        client = live(server, token)
        error = client.until(lambda f: f["type"] == "error", what="the error")
        assert client.closed() == 4401, token
        assert error["data"]["code"] == "UNAUTHENTICATED"
        assert set(error) == {"v", "id", "topic", "type", "ts", "data"}
        assert error["v"] == 1
        assert isinstance(error["ts"], int)


def test_events_reach_each_topic_and_refusals_leave_the_socket_usable(server, tokens, provider):
    owner, mallory = tokens["testuser123"], tokens["mallory"]
    with live(server, owner) as watcher, live(server, owner) as own_runs:
        joined = watcher.until(lambda f: f["type"] == "subscribe_ack", what="the user topic's ack")
        assert joined["topic"] == joined["data"]["topic"] == "user:testuser123"
        own_runs.until(lambda f: f["type"] == "subscribe_ack", what="the user topic's ack")
        assert watcher.subscribe(f"org:{ORG}")[f"org:{ORG}"]["type"] == "subscribe_ack"

        # The guild comes up: its status, with its agents' health summary, on its organisation's topic.
        guild_id = launch(server, owner)
        running = watcher.event("guild_status", f"org:{ORG}",
                                lambda d: d["guild_id"] == guild_id and d["status"] == "RUNNING", timeout=30)
        assert running["data"]["organization_id"] == ORG
        assert running["data"]["agents"].get("running", 0) >= 2  # the manager and the assistant
        answers = watcher.subscribe(f"guild:{guild_id}", f"agent:{guild_id}:{AGENT}")
        assert {a["type"] for a in answers.values()} == {"subscribe_ack"}
        # Another member of the organisation, not an admin, follows the guild too.
        other = live(server, mallory)
        assert other.subscribe(f"guild:{guild_id}")[f"guild:{guild_id}"]["type"] == "subscribe_ack"

        # A first exchange makes the conversation's thread; its follower sees the next exchange live.
        with connect(f"{server.ws_base}/ws/guilds/{guild_id}/syscomms/testuser123?token={owner}") as system:
            receive_until(system, lambda f: f["format"] == REPORT, timeout=10)
            with connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/testuser123/{quote('Test User')}"
                         f"?token={owner}") as user:
                receive_until(system, lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                              timeout=20)
                assert ask(user, "Hello model!")["payload"]["text"] == "Hello from the fake model."
                status, threads = server.request("GET", f"/api/threads?guild_id={guild_id}",
                                                 headers={"Authorization": f"Bearer {owner}"})
                assert status == 200, threads
                thread_id = threads["results"][0]["id"] if isinstance(threads, dict) else threads[0]["id"]
                assert watcher.subscribe(f"thread:{thread_id}")[f"thread:{thread_id}"]["type"] == "subscribe_ack"
                # A budget the next run takes past 80 %: a warning on the guild's topic.
                status, body = server.request("PUT", f"/api/guilds/{guild_id}/budget", {"monthly_tokens": 40},
                                              headers={"Authorization": f"Bearer {owner}"})
                assert status == 200, body
                ask(user, "And again?")

        thread = f"thread:{thread_id}"
        asked = watcher.event("thread_message_created", thread, lambda d: d["message"]["role"] == "user")
        assert asked["data"]["message"]["content"] == "And again?"
        assert (asked["data"]["guild_id"], asked["data"]["agent_id"]) == (guild_id, AGENT)
        started = watcher.event("run_update", thread, lambda d: d["status"] == "running")
        run_id = started["data"]["run_id"]
        final = watcher.event("stream_chunk", thread, lambda d: d["chunk_type"] == "assistant_message")
        assert (final["data"]["content"], final["data"]["run_id"]) == ("Hello from the fake model.", run_id)
        tokens_streamed = [f["data"]["content"] for f in watcher.frames
                           if f["type"] == "stream_chunk" and f["data"]["chunk_type"] == "assistant_token"]
        assert "".join(tokens_streamed) == "Hello from the fake model."
        watcher.event("run_update", thread, lambda d: d["run_id"] == run_id and d["status"] == "succeeded")
        # The first exchange's answer is stored after its reply went out, so it may reach the new follower too.
        answered = watcher.event("thread_message_created", thread,
                                 lambda d: d["message"]["role"] == "assistant" and d["message"]["run_id"] == run_id)
        assert answered["data"]["message"]["content"] == "Hello from the fake model."
        warning = watcher.event("budget_warning", f"guild:{guild_id}")
        assert (warning["data"]["scope"], warning["data"]["limit_tokens"]) == ("guild", 40)
        assert warning["data"]["spent_tokens"] >= 32
        # Each event once per socket, whichever of its topics the socket follows (the first names it).
        runs_seen = [(f["topic"], f["data"]["status"]) for f in watcher.frames
                     if f["type"] == "run_update" and f["data"]["run_id"] == run_id]
        assert runs_seen == [(thread, "running"), (thread, "succeeded")]
        # The socket that follows only its user's topic sees the user's runs there.
        mine = own_runs.event("run_update", "user:testuser123", lambda d: d["run_id"] == run_id and
                              d["status"] == "succeeded")
        assert mine["data"]["thread_id"] == thread_id
        assert not [f for f in own_runs.frames if f["type"] in ("stream_chunk", "thread_message_created")]

        # The member sees the guild's runs, but not its budget (GET …/budget is for admins).
        other.event("run_update", f"guild:{guild_id}", lambda d: d["run_id"] == run_id and d["status"] == "succeeded")

        # Someone else's thread and user topic, or another organisation, are not the member's to follow.
        with other:
            refused = other.subscribe(thread, "user:testuser123", "nonsense", "org:elsewhere", f"guild:{guild_id}")
            assert {t: (a["type"], a["data"].get("reason")) for t, a in refused.items()} == {
                thread: ("subscribe_error", "not_found"),
                "user:testuser123": ("subscribe_error", "not_found"),
                "nonsense": ("subscribe_error", "invalid_topic"),
                "org:elsewhere": ("subscribe_error", "not_found"),
                f"guild:{guild_id}": ("subscribe_ack", None),
            }
            other.send("subscribe", {"topics": [f"agent:{guild_id}:{AGENT}"]})  # still usable after refusals
            other.event("subscribe_ack", f"agent:{guild_id}:{AGENT}")

            # Unfollowing the guild: its status now arrives on the organisation's topic instead.
            assert watcher.unsubscribe(f"guild:{guild_id}")[f"guild:{guild_id}"]["type"] == "unsubscribe_ack"
            status, body = server.request("POST", f"/api/guilds/{guild_id}/stop", {},
                                          headers={"Authorization": f"Bearer {owner}"})
            assert status in (200, 202), body
            stopped = watcher.until(lambda f: f["type"] == "guild_status" and f["data"]["status"] == "STOPPED",
                                    what="the guild stopped")
            assert stopped["topic"] == f"org:{ORG}"
            gone = watcher.event("agent_status", f"agent:{guild_id}:{AGENT}", lambda d: d["status"] == "stopped")
            assert gone["data"]["name"] == "Assistant"
            other.event("guild_status", f"guild:{guild_id}", lambda d: d["status"] == "STOPPED")
            # Events reach a socket in the order they happened: a budget warning would have come before.
            assert not [f for f in other.frames if f["type"] == "budget_warning"]
    assert provider.requests


def test_malformed_frames_get_an_error_and_the_socket_goes_on(server, tokens):
    with live(server, tokens["mallory"]) as client:
        client.until(lambda f: f["type"] == "subscribe_ack", what="the user topic's ack")
        for raw, code in [("{not json", "INVALID_JSON"), ("[1, 2]", "INVALID_FRAME"),
                          (json.dumps({"v": 2, "type": "subscribe", "data": {"topics": ["user:mallory"]}}), "INVALID_FRAME"),
                          (json.dumps({"v": 1, "type": "publish", "data": {}}), "UNKNOWN_FORMAT"),
                          (json.dumps({"v": 1, "type": "subscribe", "data": {"topics": "x" * 0}}), "INVALID_FRAME"),
                          (json.dumps({"v": 1, "type": "subscribe", "data": []}), "INVALID_FRAME")]:
            before = len([f for f in client.frames if f["type"] == "error"])
            client.socket.send(raw)
            error = client.until(lambda f, n=before: f["type"] == "error" and
                                 len([g for g in client.frames if g["type"] == "error"]) > n, what=code)
            assert error["data"]["code"] == code, (raw, error)
        assert client.subscribe(f"org:{ORG}")[f"org:{ORG}"]["type"] == "subscribe_ack"


def test_a_client_that_answers_no_ping_is_closed_4408_and_one_that_does_stays(server, tokens):
    with live(server, tokens["mallory"], answer_pings=False) as silent, live(server, tokens["mallory"]) as answering:
        ping = silent.until(lambda f: f["type"] == "ping", what="a ping")
        assert ping["topic"] == "system"
        timeout = silent.until(lambda f: f["type"] == "error", timeout=PONG_TIMEOUT + 10, what="the timeout error")
        assert timeout["data"]["code"] == "HEARTBEAT_TIMEOUT"
        assert silent.closed() == 4408
        # The answering one has had as long, and more pings since: still open, still answering.
        pings = len([f for f in answering.frames if f["type"] == "ping"])
        answering.until(lambda f: f["type"] == "ping" and
                        len([g for g in answering.frames if g["type"] == "ping"]) > pings + 1, what="two more pings")
        assert answering.subscribe(f"org:{ORG}")[f"org:{ORG}"]["type"] == "subscribe_ack"


def test_a_socket_follows_at_most_the_cap_of_topics(server, tokens):
    guilds = [launch(server, tokens["testuser123"], name=f"Capped{n}") for n in range(MAX_TOPICS - 1)]
    with live(server, tokens["mallory"]) as client:
        client.until(lambda f: f["type"] == "subscribe_ack", what="the user topic's ack")
        too_many = [f"guild:{g}" for g in guilds] + [f"org:{ORG}", f"agent:{guilds[0]}:{AGENT}"]
        client.send("subscribe", {"topics": [*too_many, "one-more"]})  # more than a socket may follow at all
        assert client.until(lambda f: f["type"] == "error", what="the refusal")["data"]["code"] == "INVALID_FRAME"
        answers = client.subscribe(*too_many[:MAX_TOPICS])
        assert [answers[t]["type"] for t in too_many[:MAX_TOPICS - 1]] == ["subscribe_ack"] * (MAX_TOPICS - 1)
        over = answers[too_many[MAX_TOPICS - 1]]
        assert (over["type"], over["data"]["reason"]) == ("subscribe_error", "too_many_topics")
        # One dropped makes room for another.
        client.unsubscribe(f"guild:{guilds[0]}")
        assert client.subscribe(f"org:{ORG}")[f"org:{ORG}"]["type"] == "subscribe_ack"
