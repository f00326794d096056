"""MCP tools over real HTTP: the fake provider asks for tools, a real MCP server (the official SDK's) answers, the
agent carries results back to the model, the thread and the user's sockets; on both engines."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from guilds.models import Run, RunStatus, ThreadMessage
from tests.llm.conftest import llm_spec
from tests.llm.test_llm_agent import ERROR, eventually, frame, is_reply, launched, own_id_of, usercomms
from tests.support.fake_llm import Answer

pytestmark = pytest.mark.django_db(transaction=True)


def tools_spec(fake_llm, *servers: dict, **properties) -> dict:
    return llm_spec(fake_llm.base_url, mcp_servers=list(servers), **properties)


def server_of(tool_server, **fields) -> dict:
    return {"name": "weather", "url": tool_server.url, "auth_token": "${GUILDSITE_TEST_MCP_TOKEN}", **fields}


def offered(request: dict) -> list[str]:
    return sorted(tool["function"]["name"] for tool in request["body"].get("tools") or [])


def chunks_of(user, chunk_type: str) -> list[dict]:
    return [f["payload"] for f in user.frames if f["format"] == "stream_chunk" and f["payload"]["chunk_type"] == chunk_type]


async def test_the_model_calls_a_tool_and_answers_with_its_result(rig, fake_llm, llm_settings, tool_server):
    fake_llm.then(Answer(deltas=["Let me check. "], tool_calls=[
                      {"id": "call_1", "name": "forecast", "arguments": json.dumps({"city": "Paris"})}]),
                  Answer(deltas=["It is sunny ", "in Paris."]))
    guild = await launched(rig, tools_spec(fake_llm, server_of(tool_server, allowed_tools=["forecast", "db_q*"])))
    async with usercomms(guild.id) as user:
        await user.send(frame("Weather in Paris?"))
        own = await own_id_of(user)
        reply = await user.until(is_reply(own), what="the answer")
    assert reply["payload"]["text"] == "It is sunny in Paris."
    assert tool_server.calls == [("forecast", {"city": "Paris"})]
    assert set(tool_server.authorizations) == {"Bearer mcp-test-token"}  # ${GUILDSITE_TEST_MCP_TOKEN}, expanded

    first, second = fake_llm.requests
    assert offered(first) == ["db_query", "forecast"]  # by name and by prefix: not db_drop, slow or fail
    assert second["body"]["messages"][-2:] == [
        {"role": "assistant", "content": "Let me check. ", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "forecast", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny and 21 C in Paris"}]

    outputs = chunks_of(user, "tool_output")
    assert [(o["content"], o["tool_name"], o["tool_call_id"], o["ok"]) for o in outputs] == [
        ("Sunny and 21 C in Paris", "forecast", "call_1", True)]
    chunks = [f["payload"] for f in user.frames if f["format"] == "stream_chunk"]
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert chunks[-1] == {**chunks[-1], "chunk_type": "assistant_message", "content": "It is sunny in Paris."}

    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).first(), what="the run")
    assert [(c["tool"], c["server"], c["ok"]) for c in run.tool_calls] == [("forecast", "weather", True)]
    assert run.tool_calls[0]["duration_ms"] >= 0
    assert run.notes == []
    assert (run.input_tokens, run.output_tokens) == (24, 10)  # both rounds
    stored = await sync_to_async(lambda: [(m.role, m.content, bool(m.tool_calls), m.tool_call_id) for m in
                                          ThreadMessage.objects.filter(thread_id=run.thread_id).order_by("id")])()
    assert stored == [("user", "Weather in Paris?", False, ""), ("assistant", "Let me check. ", True, ""),
                      ("tool", "Sunny and 21 C in Paris", False, "call_1"),
                      ("assistant", "It is sunny in Paris.", False, "")]


async def test_a_tool_outside_the_allowlist_is_refused_when_called_anyway(rig, fake_llm, llm_settings, tool_server):
    fake_llm.then(Answer(deltas=[], tool_calls=[{"id": "c1", "name": "db_drop", "arguments": '{"table": "users"}'}]),
                  Answer(deltas=["I may not do that."]))
    guild = await launched(rig, tools_spec(fake_llm, server_of(tool_server, allowed_tools=["db_query"])))
    async with usercomms(guild.id) as user:
        await user.send(frame("Drop the users table"))
        reply = await user.until(is_reply(await own_id_of(user)), what="the answer")
    assert reply["payload"]["text"] == "I may not do that."
    assert offered(fake_llm.requests[0]) == ["db_query"]
    assert tool_server.calls == []  # never reached the server
    told = fake_llm.requests[1]["body"]["messages"][-1]
    assert told == {"role": "tool", "tool_call_id": "c1", "content": "error: 'db_drop' is not a tool this agent may use"}
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).first(), what="the run")
    assert [(c["tool"], c["ok"]) for c in run.tool_calls] == [("db_drop", False)]


async def test_calls_of_a_round_run_at_once_a_dead_server_costs_its_tools_only_and_errors_reach_the_model(
        rig, fake_llm, llm_settings, tool_server):
    calls = [{"id": f"s{i}", "name": "slow", "arguments": '{"seconds": 0.5}'} for i in range(3)]
    fake_llm.then(Answer(deltas=[], tool_calls=[*calls, {"id": "f1", "name": "fail", "arguments": "{}"}]),
                  Answer(deltas=["Done."]))
    dead = {"name": "gone", "url": "http://127.0.0.1:9/mcp", "allowed_tools": ["*"]}  # the discard port
    guild = await launched(rig, tools_spec(fake_llm, dead, server_of(tool_server, allowed_tools=["slow", "fail"])))
    async with usercomms(guild.id) as user:
        await user.send(frame("Work hard"))
        reply = await user.until(is_reply(await own_id_of(user)), timeout=20, what="the answer")
    assert reply["payload"]["text"] == "Done."
    assert offered(fake_llm.requests[0]) == ["fail", "slow"]
    assert tool_server.most_at_once == 3
    results = {m["tool_call_id"]: m["content"] for m in fake_llm.requests[1]["body"]["messages"] if m["role"] == "tool"}
    assert results["s0"] == "slept 0.5"
    assert results["f1"] == "Error executing tool fail"  # the server's words, as a tool result
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).first(), what="the run")
    assert sorted((c["tool"], c["ok"]) for c in run.tool_calls) == [("fail", False), ("slow", True), ("slow", True),
                                                                   ("slow", True)]
    assert len(run.notes) == 1
    assert "'gone' could not be reached" in run.notes[0]
    assert not [f for f in user.frames if f["format"] == ERROR]


async def test_rounds_stop_at_max_steps_and_the_last_call_offers_no_tools(rig, fake_llm, llm_settings, tool_server):
    again = {"id": "c", "name": "forecast", "arguments": '{"city": "Oslo"}'}
    fake_llm.then(Answer(deltas=[], tool_calls=[again]), Answer(deltas=[], tool_calls=[again]),
                  Answer(deltas=["Enough."]))
    guild = await launched(rig, tools_spec(fake_llm, server_of(tool_server), max_steps=2))
    async with usercomms(guild.id) as user:
        await user.send(frame("Keep checking"))
        reply = await user.until(is_reply(await own_id_of(user)), what="the answer")
    assert reply["payload"]["text"] == "Enough."
    assert [len(offered(r)) > 0 for r in fake_llm.requests] == [True, True, False]
    assert len(tool_server.calls) == 2


async def test_a_servers_listing_is_kept_between_messages(rig, fake_llm, llm_settings, tool_server):
    from guilds.agents.llm import tools

    tools._listings.clear()  # this process's; the workers' know nothing of this test's new server
    guild = await launched(rig, tools_spec(fake_llm, server_of(tool_server, allowed_tools=["forecast"])))
    async with usercomms(guild.id) as user:
        for number in range(3):
            await user.send(frame(f"Hello {number}", client_id=f"m{number}"))
            await user.until(is_reply(await own_id_of(user, f"m{number}")), what=f"answer {number}")
    assert [offered(r) for r in fake_llm.requests] == [["forecast"]] * 3
    # Kept per process: here once; the Celery workers' pool processes may each list it once.
    assert tool_server.listings == 1 if rig.engine.name == "inprocess" else 1 <= tool_server.listings < 3


@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)  # the timeout is this process's setting
async def test_a_tool_call_past_the_timeout_is_an_error_the_model_reads(rig, fake_llm, llm_settings, tool_server):
    llm_settings.GUILDSITE_MCP_TIMEOUT_SECONDS = 1.0
    fake_llm.then(Answer(deltas=[], tool_calls=[{"id": "t1", "name": "slow", "arguments": '{"seconds": 5}'}]),
                  Answer(deltas=["It took too long."]))
    guild = await launched(rig, tools_spec(fake_llm, server_of(tool_server, allowed_tools=["slow"])))
    async with usercomms(guild.id) as user:
        await user.send(frame("Be slow"))
        reply = await user.until(is_reply(await own_id_of(user)), what="the answer")
    assert reply["payload"]["text"] == "It took too long."
    told = fake_llm.requests[1]["body"]["messages"][-1]
    assert told["tool_call_id"] == "t1"
    assert told["content"].startswith("error: the tool could not be called (TimeoutError")
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).first(), what="the run")
    assert run.tool_calls[0]["ok"] is False
    assert 900 <= run.tool_calls[0]["duration_ms"] < 4000


@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)  # the provider's framing and a setting: one engine
async def test_calls_sent_at_one_index_stay_apart_and_a_round_makes_at_most_the_cap(rig, fake_llm, llm_settings,
                                                                                    tool_server):
    llm_settings.GUILDSITE_MCP_MAX_CALLS_PER_ROUND = 2
    cities = ["Paris", "Oslo", "Lima"]
    fake_llm.then(Answer(deltas=[], one_index=True, tool_calls=[
                      {"id": f"c{i}", "name": "forecast", "arguments": json.dumps({"city": city})}
                      for i, city in enumerate(cities)]),
                  Answer(deltas=["Two of three."]))
    guild = await launched(rig, tools_spec(fake_llm, server_of(tool_server, allowed_tools=["forecast"])))
    async with usercomms(guild.id) as user:
        await user.send(frame("Three cities"))
        reply = await user.until(is_reply(await own_id_of(user)), what="the answer")
    assert reply["payload"]["text"] == "Two of three."
    assert sorted(call[1]["city"] for call in tool_server.calls) == ["Oslo", "Paris"]  # the first two, apart
    results = {m["tool_call_id"]: m["content"] for m in fake_llm.requests[1]["body"]["messages"] if m["role"] == "tool"}
    assert results["c0"] == "Sunny and 21 C in Paris"
    assert results["c1"] == "Sunny and 21 C in Oslo"
    assert results["c2"].startswith("error: at most 2 tool calls a round")
