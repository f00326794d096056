"""External agents (seed 003) against a real server: the SDK's example agents in their own processes, and a raw
protocol client where the test needs to misbehave. The embedded pass runs the guilds in-process, the services pass
on Celery workers over PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import REPORT, receive_until, sign_in
from tests.support.live_client import LiveClient
from tests.support.live_server import LiveServer, service_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "sdk" / "python" / "examples"
ORG, OTHER_ORG = "testorg456", "otherorg789"
QUEUE_LIMIT = 5
PING_SECONDS = 1.0
EXTERNAL_STATUS = "guildsite.ExternalAgentStatus"


@pytest.fixture(scope="module")
def server():
    server = LiveServer(env={
        "AUTH_DISABLED": "0", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "GUILDSITE_HEARTBEAT_TIMEOUT": "3",
        # Raw agents here send no heartbeats: they go offline by leaving, not by the presence sweep (test_grpc's).
        "GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS": "0.5", "GUILDSITE_EXTERNAL_MISSED_HEARTBEATS": "120",
        "GUILDSITE_EXTERNAL_PING_SECONDS": str(PING_SECONDS),
        "GUILDSITE_EXTERNAL_QUEUE_LIMIT": str(QUEUE_LIMIT), "GUILDSITE_WS_RECHECK_SECONDS": "1", **service_env()})
    server.migrate()
    # The people, in one process (a management command each would start Django eight times).
    server.manage("shell", "-c", "\n".join([
        "from guildsite.accounts import services as s",
        "users = {u: s.user_create(username=u, password=u + '-password-123') for u in "
        "('testuser123', 'mallory', 'victor', 'eve')}",
        f"ours = s.organization_create(name='Test org', creator=users['testuser123'], id={ORG!r})",
        "s.membership_add(organization=ours, username='mallory', role='member')",
        "s.membership_add(organization=ours, username='victor', role='viewer')",
        f"s.organization_create(name='Other org', creator=users['eve'], id={OTHER_ORG!r})"]))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(server):
    return {user: sign_in(server, user, f"{user}-password-123") for user in ("testuser123", "mallory", "victor", "eve")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(server: LiveServer, token: str, name: str, org: str = ORG) -> tuple[str, str]:
    status, made = server.request("POST", "/api/external-agents", {"organization_id": org, "name": name},
                                  headers=bearer(token))
    assert status == 201, made
    return made["id"], made["key"]


def blueprint_with(server: LiveServer, token: str, registration_id: str, org: str = ORG) -> str:
    spec = {"name": "Outside help", "description": "An external agent in a guild",
            "agents": [{"id": "helper", "name": "Helper", "description": "Runs elsewhere",
                        "class_name": "guilds.agents.external.ExternalAgent",
                        "properties": {"registration_id": registration_id}}]}
    status, made = server.request("POST", "/catalog/blueprints/", {
        "name": f"Outside {registration_id}", "description": "x", "version": "v1", "author_id": "t",
        "organization_id": org, "exposure": "private", "spec": spec}, headers=bearer(token))
    assert status == 201, made
    return made["id"]


def launch(server: LiveServer, token: str, registration_id: str, user: str = "testuser123", org: str = ORG) -> str:
    blueprint = blueprint_with(server, token, registration_id, org)
    status, launched = server.request("POST", f"/catalog/blueprints/{blueprint}/guilds",
                                      {"guild_name": "Outside", "user_id": user, "org_id": org}, headers=bearer(token))
    assert status == 201, launched
    return launched["id"]


def guild_reaches(server: LiveServer, token: str, guild_id: str, status: str) -> dict:
    return server.guild_reaches(guild_id, status, headers=bearer(token), timeout=20)


def command_reaches(server: LiveServer, token: str, command_id: str, state: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    command: dict = {}
    while time.monotonic() < deadline:
        _, command = server.request("GET", f"/api/commands/{command_id}", headers=bearer(token))
        if command.get("state") == state:
            return command
        time.sleep(0.1)  # a poll interval, within the deadline
    raise AssertionError(f"command {command_id} is {command.get('state')}, not {state}")


def user_socket(server: LiveServer, guild_id: str, token: str, user: str = "testuser123"):
    return connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/{user}/{user}?token={token}")


def say(user_ws, text: str) -> None:
    # The seed's chat frame, conversation id and all: the agent's reply keeps it.
    user_ws.send(json.dumps({"id": text, "format": "text", "payload": {"text": text}, "conversationId": "conv_789"}))


def helper_said(frame: dict) -> bool:
    return frame.get("format") == "text" and frame.get("sender", {}).get("name") == "Helper"


class SdkAgent:
    """One of the SDK's example agents, in its own process."""

    def __init__(self, server: LiveServer, key: str, example: str = "echo_agent.py") -> None:
        env = {**os.environ, "GUILDSITE_URL": f"{server.ws_base}/ws/agents/", "GUILDSITE_AGENT_KEY": key}
        self.log = Path(server.var_dir) / f"agent-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen([sys.executable, str(EXAMPLES / example)], env=env, cwd=ROOT,
                                        stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class RawAgent:
    """The protocol by hand, for what the SDK would never do."""

    def __init__(self, server: LiveServer, key: str | None, *, register: bool = True, answer_pings: bool = True,
                 query: str = "", **register_fields: Any) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.ws = connect(f"{server.ws_base}/ws/agents/{query}", additional_headers=headers)
        self.answer_pings = answer_pings
        if register:
            self.send({"type": "register", "name": "raw", "version": "1.0", "capabilities": ["raw"],
                       "hostname": "test-host", "platform": "test", **register_fields})
            self.registered = self.expect("registered")

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame))

    def expect(self, type_: str, predicate=lambda frame: True, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if frame["type"] == "ping" and self.answer_pings:
                self.send({"type": "pong"})
            if frame["type"] == type_ and predicate(frame):
                return frame
        raise AssertionError(f"no {type_} frame in time")

    def close_code(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if frame["type"] == "ping" and self.answer_pings:
                    self.send({"type": "pong"})
        except ConnectionClosed:
            return self.ws.close_code
        raise AssertionError("the socket stayed open")

    def close(self) -> None:
        self.ws.close()


# --- the flow the issue asks for ----------------------------------------------------------------------


def test_an_sdk_agent_answers_chat_goes_offline_and_gets_what_waited_once(server, tokens):
    token = tokens["testuser123"]
    registration_id, key = register(server, token, "echo")
    guild_id = launch(server, token, registration_id)
    guild = guild_reaches(server, token, guild_id, "WARNING")  # nobody connected yet: it does not hold STARTING
    assert "offline" in guild["status_detail"]
    system = connect(f"{server.ws_base}/ws/guilds/{guild_id}/syscomms/testuser123?token={token}")
    agent = SdkAgent(server, key)
    try:
        online = receive_until(system, lambda f: f.get("format") == EXTERNAL_STATUS and f["payload"]["status"] == "online",
                               timeout=20)
        assert online["payload"]["agent_id"] == "helper"
        receive_until(system, lambda f: f.get("format") == REPORT
                      and f["payload"]["agents"].get("helper", {}).get("checkstatus") == "ok", timeout=20)
        guild_reaches(server, token, guild_id, "RUNNING")
        with user_socket(server, guild_id, token) as user:
            say(user, "hello")
            answer = receive_until(user, helper_said, timeout=20)
            assert answer["payload"]["text"] == "external echo: hello"
            assert answer["conversation_id"] == "conv_789"

            agent.kill()
            receive_until(system, lambda f: f.get("format") == EXTERNAL_STATUS and f["payload"]["status"] == "offline",
                          timeout=20)
            assert "offline" in guild_reaches(server, token, guild_id, "WARNING")["status_detail"]
            for text in ("one", "two", "three"):
                say(user, text)
            _, listed = server.request("GET", f"/api/external-agents/{registration_id}", headers=bearer(token))
            assert listed["status"] == "offline"

            agent = SdkAgent(server, key)
            answers = []
            for _ in range(3):
                answers.append(receive_until(user, helper_said, timeout=20)["payload"]["text"])
            # A marker after them: the agent answers in order, so a repeat would come before the marker's answer.
            say(user, "marker")
            answers.append(receive_until(user, helper_said, timeout=20)["payload"]["text"])
            assert answers == [f"external echo: {t}" for t in ("one", "two", "three", "marker")]
        guild_reaches(server, token, guild_id, "RUNNING")
    finally:
        agent.stop()
        system.close()


def test_a_command_round_trip_through_the_sdk(server, tokens):
    token = tokens["mallory"]  # a member may send commands
    registration_id, key = register(server, tokens["testuser123"], "runner")
    agent = SdkAgent(server, key, "command_agent.py")
    try:
        status, command = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                         {"type": "run", "content": "echo hi there"}, headers=bearer(token))
        assert status == 201, command
        assert command["state"] in ("queued", "sent")
        assert command["timeout_s"] == 300
        done = command_reaches(server, token, command["id"], "succeeded")
        assert done["result"]["output"] == "hi there\n"
        assert done["result"]["exit_code"] == 0
        assert done["result"]["success"] is True
        assert done["result"]["execution_time_ms"] >= 0
        assert done["acknowledged_at"] is not None

        status, refused = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                         {"type": "run", "content": "rm -rf /"}, headers=bearer(token))
        failed = command_reaches(server, token, refused["id"], "failed")
        assert failed["result"]["error_message"] == "not allowed: rm"
    finally:
        agent.stop()


def test_commands_expire_and_are_cancelled_and_a_result_counts_once(server, tokens):
    token = tokens["testuser123"]
    registration_id, key = register(server, token, "slow")
    # Offline: a command waits, then expires.
    _, waiting = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                {"type": "run", "content": "x", "timeout_s": 1}, headers=bearer(token))
    expired = command_reaches(server, token, waiting["id"], "expired")
    assert expired["sent_at"] is None
    # Queued and cancelled before it was sent: the agent never sees either.
    _, queued = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                               {"type": "run", "content": "y"}, headers=bearer(token))
    status, cancelled_early = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                             {"cancel": queued["id"]}, headers=bearer(token))
    assert status == 201
    assert cancelled_early["state"] == "succeeded"
    assert cancelled_early["is_cancellation"]
    assert command_reaches(server, token, queued["id"], "cancelled")["result"]["success"] is False

    raw = RawAgent(server, key)
    try:
        _, running = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                    {"type": "run", "content": "long", "parameters": {"n": 1}, "timeout_s": 60},
                                    headers=bearer(token))
        sent = raw.expect("command", lambda f: f["command_id"] == running["id"])
        assert sent == {"type": "command", "command_id": running["id"], "command_type": "run", "content": "long",
                        "parameters": {"n": 1}, "is_cancellation": False, "timeout_s": 60}
        raw.send({"type": "command_ack", "command_id": running["id"]})
        command_reaches(server, token, running["id"], "acknowledged")
        # A result that stores: a Windows exit status past 2^31 included.
        _, crashed = server.request("POST", f"/api/external-agents/{registration_id}/commands", {"type": "run"},
                                    headers=bearer(token))
        raw.expect("command", lambda f: f["command_id"] == crashed["id"])
        raw.send({"type": "command_result", "command_id": crashed["id"], "success": False, "output": "",
                  "error_message": "access violation", "exit_code": 3221225477, "execution_time_ms": 12.5})
        result = command_reaches(server, token, crashed["id"], "failed")["result"]
        assert result == {"success": False, "output": "", "error_message": "access violation",
                          "exit_code": 3221225477, "execution_time_ms": 12}
        status, cancellation = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                              {"cancel": running["id"]}, headers=bearer(token))
        assert status == 201
        assert cancellation["cancels"] == running["id"]
        told = raw.expect("command", lambda f: f["is_cancellation"])
        assert told["content"] == running["id"]
        command_reaches(server, token, running["id"], "cancelled")
        # The agent reports late: the cancelled command stays so; the cancellation's own result is stored once.
        raw.send({"type": "command_result", "command_id": running["id"], "success": True, "output": "late",
                  "error_message": "", "exit_code": 0, "execution_time_ms": 5})
        for output in ("stopped", "again"):
            raw.send({"type": "command_result", "command_id": told["command_id"], "success": True, "output": output,
                      "error_message": "", "exit_code": 0, "execution_time_ms": 1})
        assert command_reaches(server, token, told["command_id"], "succeeded")["result"]["output"] == "stopped"
        _, still = server.request("GET", f"/api/commands/{running['id']}", headers=bearer(token))
        assert still["state"] == "cancelled"
        assert still["result"]["output"] == ""
        status, ended = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                       {"cancel": running["id"]}, headers=bearer(token))
        assert status == 409
        assert ended["code"] == "command_ended"
        # A result for a command the agent does not have: an error frame, and the socket goes on.
        raw.send({"type": "command_result", "command_id": "nope", "success": True})
        assert raw.expect("error")["code"] == "unknown_command"
    finally:
        raw.close()


# --- who may connect ------------------------------------------------------------------------------


def test_the_agent_socket_refuses_anything_but_its_own_key(server, tokens):
    registration_id, key = register(server, tokens["testuser123"], "keyed")
    assert RawAgent(server, None, register=False).close_code() == 4401
    assert RawAgent(server, "gsk_not_a_key", register=False).close_code() == 4401
    assert RawAgent(server, tokens["testuser123"], register=False).close_code() == 4403  # a user's token
    _, org_key = server.request("POST", f"/api/organizations/{ORG}/api-keys", {"name": "plain", "scopes": ["write"]},
                                headers=bearer(tokens["testuser123"]))
    assert RawAgent(server, org_key["key"], register=False).close_code() == 4403
    other_id, _ = register(server, tokens["testuser123"], "other")
    naming_another = RawAgent(server, key, register=False)
    naming_another.send({"type": "register", "name": "x", "agent_id": other_id})
    assert naming_another.close_code() == 4403
    # The key works here only: REST refuses it.
    status, _ = server.request("GET", "/api/external-agents", headers=bearer(key))
    assert status == 401
    by_query = RawAgent(server, None, query=f"?token={key}")
    assert by_query.registered["agent_id"] == registration_id
    # Deleted: its key stops working, and the open socket is closed at its next check.
    status, _ = server.request("DELETE", f"/api/external-agents/{registration_id}", headers=bearer(tokens["testuser123"]))
    assert status == 204
    assert by_query.close_code() == 4401
    assert RawAgent(server, key, register=False).close_code() == 4401


def test_another_organisation_cannot_reach_an_agent_or_seat_it(server, tokens):
    registration_id, _ = register(server, tokens["testuser123"], "ours")
    eve = bearer(tokens["eve"])
    assert server.request("GET", f"/api/external-agents/{registration_id}", headers=eve)[0] == 404
    assert server.request("DELETE", f"/api/external-agents/{registration_id}", headers=eve)[0] == 404
    assert server.request("POST", f"/api/external-agents/{registration_id}/commands", {"type": "run"},
                          headers=eve)[0] == 404
    _, command = server.request("POST", f"/api/external-agents/{registration_id}/commands", {"type": "run"},
                                headers=bearer(tokens["testuser123"]))
    assert server.request("GET", f"/api/commands/{command['id']}", headers=eve)[0] == 404
    assert registration_id not in {a["id"] for a in server.request("GET", "/api/external-agents", headers=eve)[1]}
    # Eve cannot seat our agent in her guild...
    blueprint = blueprint_with(server, tokens["eve"], registration_id, OTHER_ORG)
    status, refused = server.request("POST", f"/catalog/blueprints/{blueprint}/guilds",
                                     {"guild_name": "Theirs", "user_id": "eve", "org_id": OTHER_ORG}, headers=eve)
    assert status == 409
    assert registration_id in refused["detail"]
    # ...and her agent cannot publish into our guild.
    our_guild = launch(server, tokens["testuser123"], registration_id)
    _, eves_key = register(server, tokens["eve"], "hers", OTHER_ORG)
    hers = RawAgent(server, eves_key)
    try:
        hers.send({"type": "publish", "guild_id": our_guild, "format": "text", "payload": {"text": "hi"}})
        assert hers.expect("error")["code"] == "not_found"
    finally:
        hers.close()
    # Viewers read, members command, only admins register.
    victor, mallory = bearer(tokens["victor"]), bearer(tokens["mallory"])
    assert server.request("GET", f"/api/external-agents/{registration_id}", headers=victor)[0] == 200
    assert server.request("POST", f"/api/external-agents/{registration_id}/commands", {"type": "run"},
                          headers=victor)[0] == 403
    assert server.request("POST", "/api/external-agents", {"organization_id": ORG, "name": "m"}, headers=mallory)[0] == 403


# --- the protocol's edges -------------------------------------------------------------------------


def test_bad_frames_get_errors_and_the_socket_stays_usable(server, tokens):
    _, key = register(server, tokens["testuser123"], "sloppy")
    raw = RawAgent(server, key, register=False)
    try:
        raw.send({"type": "heartbeat", "status": "online"})
        assert raw.expect("error")["code"] == "not_registered"
        raw.ws.send("{not json")
        assert raw.expect("error")["code"] == "invalid_json"
        raw.send({"type": "teleport"})
        assert raw.expect("error")["code"] == "unknown_type"
        raw.ws.send(json.dumps({"type": "register", "name": "x" * 300_000}))
        assert raw.expect("error")["code"] == "too_large"
        raw.send({"type": "register", "name": "sloppy", "version": "2"})
        assert raw.expect("registered")["heartbeat_interval_s"] == 0.5
        raw.send({"type": "heartbeat", "status": "sleeping"})
        assert raw.expect("error")["code"] == "invalid_frame"
        raw.send({"type": "ack", "delivery_id": "999999999"})
        assert raw.expect("error")["code"] == "unknown_delivery"
        raw.send({"type": "ack", "delivery_id": "²"})  # a digit to str.isdigit, not to int()
        assert raw.expect("error")["code"] == "invalid_frame"
        raw.send({"type": "command_result", "command_id": "x", "success": True, "execution_time_ms": 1e300})
        assert raw.expect("error")["code"] == "invalid_frame"
        raw.send({"type": "publish", "guild_id": "nope", "format": "text", "payload": {}})
        assert raw.expect("error")["code"] == "not_found"
        raw.send({"type": "heartbeat", "status": "busy", "metrics": {"load": 0.5}})
        assert raw.expect("heartbeat_ack")["interval_s"] == 0.5
    finally:
        raw.close()


def test_an_answer_to_a_message_never_sent_is_refused(server, tokens):
    token = tokens["testuser123"]
    registration_id, key = register(server, token, "liar")
    guild_id = launch(server, token, registration_id)
    raw = RawAgent(server, key)
    try:
        guild_reaches(server, token, guild_id, "RUNNING")
        raw.send({"type": "publish", "guild_id": guild_id, "format": "text", "payload": {"text": "x"},
                  "in_response_to": "12345"})
        assert raw.expect("error")["code"] == "unknown_message"
    finally:
        raw.close()


def test_a_newer_connection_replaces_the_older_and_silence_closes_it(server, tokens):
    _, key = register(server, tokens["testuser123"], "twice")
    first = RawAgent(server, key)
    second = RawAgent(server, key)
    assert first.close_code() == 4409
    mute = RawAgent(server, key, answer_pings=False)
    assert second.close_code() == 4409
    assert mute.close_code(timeout=5 * PING_SECONDS + 5) == 4408


def test_status_subscribers_get_a_snapshot_then_changes_and_so_does_the_live_socket(server, tokens):
    token = tokens["testuser123"]
    watcher_id, watcher_key = register(server, token, "watcher")
    watched_id, watched_key = register(server, token, "watched")
    with LiveClient(f"{server.ws_base}/api/ws?token={tokens['victor']}") as live:
        assert live.subscribe(f"org:{ORG}")[f"org:{ORG}"]["type"] == "subscribe_ack"
        watcher = RawAgent(server, watcher_key)
        try:
            watcher.send({"type": "subscribe_status"})
            snapshot = {entry["agent_id"]: entry for entry in watcher.expect("status_snapshot")["agents"]}
            assert snapshot[watcher_id]["status"] == "online"
            assert snapshot[watched_id]["status"] == "offline"
            assert snapshot[watcher_id]["hostname"] == "test-host"
            watched = RawAgent(server, watched_key, capabilities=["sees"])
            update = watcher.expect("status_update", lambda f: f["agent"]["agent_id"] == watched_id)["agent"]
            assert update["status"] == "online"
            assert update["capabilities"] == ["sees"]
            event = live.until(lambda e: e["type"] == "agent_status" and e["data"].get("external_agent_id") == watched_id)
            assert event["data"]["status"] == "online"
            watched.close()
            assert watcher.expect("status_update", lambda f: f["agent"]["agent_id"] == watched_id)["agent"]["status"] \
                == "offline"
        finally:
            watcher.close()


def test_a_full_queue_sends_its_oldest_to_the_dead_letters(server, tokens):
    token = tokens["testuser123"]
    registration_id, key = register(server, token, "away")
    guild_id = launch(server, token, registration_id)
    guild_reaches(server, token, guild_id, "WARNING")
    with connect(f"{server.ws_base}/ws/guilds/{guild_id}/syscomms/testuser123?token={token}") as system, \
            user_socket(server, guild_id, token) as user:
        # The user's proxy up first: what it forwards then reaches the agent's queue in the order it was said.
        receive_until(system, lambda f: f.get("format") == REPORT
                      and f["payload"]["agents"].get("upa-testuser123", {}).get("checkstatus") == "ok", timeout=20)
        texts = [f"m{i}" for i in range(QUEUE_LIMIT + 2)]
        for text in texts:
            say(user, text)
        deadline, letters = time.monotonic() + 20, []
        while time.monotonic() < deadline and len(letters) < 2:
            _, letters = server.request("GET", f"/api/guilds/{guild_id}/dead-letters", headers=bearer(token))
            time.sleep(0.1)  # a poll interval, within the deadline
    assert sorted(letter["message"]["payload"]["text"] for letter in letters) == ["m0", "m1"]
    assert "GUILDSITE_EXTERNAL_QUEUE_LIMIT" in letters[0]["reason"]
    raw = RawAgent(server, key)
    try:
        got = [raw.expect("message") for _ in range(QUEUE_LIMIT)]
        assert [frame["message"]["payload"]["text"] for frame in got] == texts[2:]
        assert all(frame["guild_id"] == guild_id for frame in got)
        for frame in got:
            raw.send({"type": "ack", "delivery_id": frame["delivery_id"]})
        raw.send({"type": "ack", "delivery_id": got[0]["delivery_id"]})
        assert raw.expect("error")["code"] == "unknown_delivery"  # acknowledged: gone
    finally:
        raw.close()


def test_the_sdk_times_commands_out_and_stops_cancelled_ones(server, tokens):
    """The SDK's side of timeouts and cancellation, against the server: its result says why the command ended."""
    import asyncio
    import threading

    from guildsite_agent import Agent

    token = tokens["testuser123"]
    registration_id, key = register(server, token, "sleeper")
    agent = Agent(f"{server.ws_base}/ws/agents/", key, name="sleeper")
    started = threading.Event()

    @agent.command("sleep")
    async def sleep(cmd):
        started.set()
        await asyncio.sleep(float(cmd.content))  # the work itself: a long one, cut short by a timeout or a cancel
        return "woke"

    runner = threading.Thread(target=lambda: asyncio.run(agent.serve()), daemon=True)
    runner.start()
    try:
        _, quick = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                  {"type": "sleep", "content": "0"}, headers=bearer(token))
        assert command_reaches(server, token, quick["id"], "succeeded")["result"]["output"] == "woke"
        _, slow = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                 {"type": "sleep", "content": "60", "timeout_s": 2}, headers=bearer(token))
        timed_out = command_reaches(server, token, slow["id"], "failed")["result"]
        assert timed_out["error_message"] == "timed out after 2 s"
        started.clear()
        _, long = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                 {"type": "sleep", "content": "60"}, headers=bearer(token))
        assert started.wait(20)
        command_reaches(server, token, long["id"], "acknowledged")
        _, cancellation = server.request("POST", f"/api/external-agents/{registration_id}/commands",
                                         {"cancel": long["id"]}, headers=bearer(token))
        assert command_reaches(server, token, cancellation["id"], "succeeded")["result"]["output"] == "cancelled"
        assert command_reaches(server, token, long["id"], "cancelled")["state"] == "cancelled"
    finally:
        agent.stop()
        runner.join(15)
    assert not runner.is_alive()
    # It said so on its way out; the server records that (and the close after it) as it reads them.
    deadline = time.monotonic() + 10
    seen: dict = {}
    while time.monotonic() < deadline:
        _, seen = server.request("GET", f"/api/external-agents/{registration_id}", headers=bearer(token))
        if seen["status"] == "offline":
            break
        time.sleep(0.1)  # a poll interval, within the deadline
    assert seen["status"] == "offline"
