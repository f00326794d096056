"""The Python agent SDK (sdk/python) against a fake agent socket: no guildsite server needed."""

from __future__ import annotations

import asyncio
import json

import pytest
from guildsite_agent import Agent, AuthenticationRefused
from guildsite_agent.backoff import Backoff
from guildsite_agent.lru import BoundedLRU
from websockets.asyncio.server import serve

TEXT = "rustic_ai.core.ui_protocol.types.TextFormat"


def test_backoff_delays_stay_within_bounds_and_grow():
    backoff = Backoff(base=0.5, cap=30.0)
    ceilings = []
    for _ in range(40):
        ceilings.append(backoff.ceiling)
        assert 0.0 <= backoff.next_delay() <= 30.0
    assert ceilings[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert ceilings[-1] == 30.0
    longest = Backoff(rng=lambda: 1.0)
    assert [longest.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    longest.reset()
    assert longest.next_delay() == 0.5


def test_lru_evicts_the_oldest_beyond_its_bound():
    seen = BoundedLRU(3)
    for key in ("a", "b", "c"):
        seen.put(key)
    seen.get("a")  # used again, so "b" is now the oldest
    seen.put("d")
    assert len(seen) == 3
    assert "b" not in seen
    assert all(key in seen for key in ("a", "c", "d"))


async def test_serve_dedupes_acks_replies_then_stops_on_4401():
    message_id = 2**63 + 7  # larger than a float holds exactly: must travel as an opaque integer
    message = {"id": message_id, "sender": {"id": "u1", "name": "Ann"}, "format": TEXT,
               "payload": {"text": "hello"}, "topics": ["default_topic"], "conversation_id": None}
    received: list[dict] = []
    headers: list[str | None] = []

    async def fake_server(ws):
        headers.append(ws.request.headers.get("Authorization"))
        received.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "registered", "agent_id": "a1", "heartbeat_interval_s": 30}))
        for delivery_id in ("d1", "d2"):  # the same message delivered twice
            await ws.send(json.dumps({"type": "message", "delivery_id": delivery_id, "guild_id": "g1",
                                      "message": message}))
        acked: set[str] = set()
        while acked != {"d1", "d2"}:
            frame = json.loads(await ws.recv())
            received.append(frame)
            if frame["type"] == "ack":
                acked.add(frame["delivery_id"])
        await ws.close(4401, "bad key")

    handled: list[object] = []
    agent = Agent("ws://127.0.0.1:0/", "secret-key", name="test-agent", version="1.0", capabilities=["echo"])

    @agent.on_message
    async def handle(msg):
        handled.append(msg.id)
        await msg.reply({"text": f"echo: {msg.payload['text']}"})

    async with serve(fake_server, "127.0.0.1", 0) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/agents/"
        with pytest.raises(AuthenticationRefused) as refused:
            await asyncio.wait_for(agent.serve(), timeout=10)

    assert refused.value.code == 4401
    assert headers == ["Bearer secret-key"]
    assert received[0]["type"] == "register"
    assert received[0]["name"] == "test-agent"
    assert handled == [message_id]
    assert [f["delivery_id"] for f in received if f["type"] == "ack"] == ["d1", "d2"]
    publishes = [f for f in received if f["type"] == "publish"]
    assert len(publishes) == 1
    assert publishes[0]["in_response_to"] == message_id
    assert publishes[0]["guild_id"] == "g1"
    assert publishes[0]["format"] == TEXT
    assert publishes[0]["payload"] == {"text": "echo: hello"}


async def test_commands_are_acked_cancelled_and_not_run_twice_then_4409_stops():
    def command(command_id, command_type, content="", **extra):
        return json.dumps({"type": "command", "command_id": command_id, "command_type": command_type,
                           "content": content, "parameters": {}, "is_cancellation": False, "timeout_s": 30, **extra})

    results: dict[str, list[dict]] = {}
    acks: list[str] = []

    async def fake_server(ws):
        await ws.recv()  # register
        await ws.send(json.dumps({"type": "registered", "agent_id": "a1", "heartbeat_interval_s": 30}))
        await ws.send(command("c1", "say", "hi"))
        await ws.send(command("c2", "wait"))
        await ws.send(command("x1", "cancel", "c2", is_cancellation=True))  # c2 has not even started yet
        await ws.send(command("c3", "reboot"))
        while len(results) < 4:
            frame = json.loads(await ws.recv())
            if frame["type"] == "command_ack":
                acks.append(frame["command_id"])
            elif frame["type"] == "command_result":
                results.setdefault(frame["command_id"], []).append(frame)
        await ws.send(command("c1", "say", "hi"))  # redelivered after it finished: the stored result again
        while len(results["c1"]) < 2:
            frame = json.loads(await ws.recv())
            if frame["type"] == "command_result":
                results[frame["command_id"]].append(frame)
        await ws.close(4409, "replaced")

    runs: list[str] = []
    agent = Agent("ws://127.0.0.1:0/", "key", name="cmd-agent")

    @agent.command("say")
    def say(cmd):  # a plain function: runs in a thread
        runs.append(cmd.id)
        return cmd.content

    @agent.command("wait")
    async def wait(cmd):
        await asyncio.Event().wait()

    async with serve(fake_server, "127.0.0.1", 0) as server:
        agent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws/agents/"
        await asyncio.wait_for(agent.serve(), timeout=10)  # 4409 returns, it does not raise

    assert acks[:4] == ["c1", "c2", "x1", "c3"]
    assert runs == ["c1"]
    assert results["c1"][0]["success"] is True
    assert results["c1"][0]["output"] == "hi"
    assert results["c1"][1] == results["c1"][0]
    assert (results["c2"][0]["success"], results["c2"][0]["error_message"]) == (False, "cancelled")
    assert (results["x1"][0]["success"], results["x1"][0]["output"]) == (True, "cancelled")
    assert results["c3"][0]["error_message"] == "unknown command type 'reboot'"
