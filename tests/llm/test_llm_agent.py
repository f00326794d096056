"""The LLM agent over a real user socket, against the fake provider (real HTTP and SSE), on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from guilds.models import GuildStatus, Run, RunStatus, Thread, ThreadMessage
from messaging import topics as t
from tests.llm.conftest import llm_spec
from tests.support.fake_llm import Answer
from tests.support.sockets import Socket

pytestmark = pytest.mark.django_db(transaction=True)

ERROR = "rustic_ai.core.agents.commons.message_formats.ErrorMessage"


def usercomms(guild_id: str, user_id: str = "testuser123") -> Socket:
    return Socket(f"/ws/guilds/{guild_id}/usercomms/{user_id}/Test%20User")


def frame(text: str, conversation_id: str | None = "conv_789", client_id: str = "msg123") -> dict:
    """Seed 000's text frame."""
    return {"id": client_id, "format": "text", "payload": {"text": text}, "conversationId": conversation_id,
            "timestamp": "2025-01-15T10:00:00.000Z"}


async def eventually(read: Callable[[], Any], timeout: float = 15, what: str = "a condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await sync_to_async(read)()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def launched(rig, spec: dict):
    def launch():
        guild = rig.create(spec)
        rig.wait_status(guild, GuildStatus.RUNNING)
        return guild

    return await sync_to_async(launch)()


def is_reply(own_id: str) -> Callable[[dict], bool]:
    return lambda f: f["format"] == "text" and f.get("in_response_to") == own_id


async def own_id_of(user: Socket, client_id: str = "msg123") -> str:
    own = await user.until(lambda f: f.get("client_message_id") == client_id, what="own message confirmed")
    return own["id"]


async def test_chunks_arrive_in_order_then_the_final_reply_and_the_run_and_thread_are_stored(rig, fake_llm, llm_settings):
    deltas = [f"w{i} " for i in range(60)]
    fake_llm.then(Answer(deltas=deltas))
    guild = await launched(rig, llm_spec(fake_llm.base_url, system_prompt="Be brief."))
    async with usercomms(guild.id) as user:
        await user.send(frame("Hello model!"))
        own = await own_id_of(user)
        reply = await user.until(is_reply(own), what="the final reply")
    answer = "".join(deltas)
    assert reply["payload"]["text"] == answer
    assert reply["thread"] == [own, reply["id"]]
    assert reply["sender"]["name"] == "Assistant"
    assert reply["topics"] == ["user:testuser123:notifications"]

    chunks = [f for f in user.frames if f["format"] == "stream_chunk"]
    tokens = [c["payload"] for c in chunks if c["payload"]["chunk_type"] == "assistant_token"]
    final = [c["payload"] for c in chunks if c["payload"]["chunk_type"] == "assistant_message"]
    assert tokens
    assert tokens[0]["content"] == "w0 "
    assert "".join(t["content"] for t in tokens) == answer
    assert len(tokens) < len(deltas) / 2  # batched, not a frame per token
    assert [c["payload"]["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert final == [{**final[0], "content": answer}]
    assert final[0]["seq"] == len(chunks)
    assert user.frames.index(chunks[-1]) < user.frames.index(reply)  # chunks first, then the reply
    assert all(c["payload"]["in_response_to"] == own and c["in_response_to"] == own for c in chunks)

    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).first(), what="the run")
    assert {c["payload"]["run_id"] for c in chunks} == {run.id}
    assert (run.input_tokens, run.output_tokens, run.cached_tokens) == (12, 5, 0)
    assert run.cost_usd is not None
    assert run.cost_usd > 0
    assert run.time_to_first_token_ms is not None
    assert run.duration_ms is not None
    assert run.trigger == "chat"
    assert run.agent_id == guild.spec["agents"][0]["id"]
    thread = await sync_to_async(lambda: Thread.objects.get(pk=run.thread_id))()
    assert (thread.requester, thread.conversation_id, thread.title) == ("testuser123", "conv_789", "Hello model!")
    owner = await sync_to_async(lambda: (thread.user.username, thread.organization_id))()
    assert owner == ("testuser123", "testorg456")  # the user and the guild's organisation
    assert {c["payload"]["thread_id"] for c in chunks} == {thread.id}
    stored = await sync_to_async(lambda: list(ThreadMessage.objects.filter(thread=thread).values_list(
        "role", "content", "bus_message_id")))()
    assert stored == [("user", "Hello model!", int(own)), ("assistant", answer, int(reply["id"]))]

    sent = fake_llm.requests[0]
    assert sent["authorization"] == "Bearer sk-fake-test-key"
    assert sent["body"]["stream"] is True
    assert sent["body"]["stream_options"] == {"include_usage": True}
    assert sent["body"]["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hello model!"}]


async def test_the_second_message_carries_the_threads_history_and_another_conversation_starts_afresh(
        rig, fake_llm, llm_settings):
    fake_llm.then(Answer(deltas=["First answer."]), Answer(deltas=["Second answer."]), Answer(deltas=["Other."]))
    guild = await launched(rig, llm_spec(fake_llm.base_url, history_limit=10))
    async with usercomms(guild.id) as user:
        await user.send(frame("One"))
        await user.until(is_reply(await own_id_of(user)), what="the first reply")
        await user.send(frame("Two", client_id="msg124"))
        await user.until(is_reply(await own_id_of(user, "msg124")), what="the second reply")
        await user.send(frame("Three", conversation_id=None, client_id="msg125"))
        await user.until(is_reply(await own_id_of(user, "msg125")), what="the third reply")
    assert [r["body"]["messages"] for r in fake_llm.requests] == [
        [{"role": "user", "content": "One"}],
        [{"role": "user", "content": "One"}, {"role": "assistant", "content": "First answer."},
         {"role": "user", "content": "Two"}],
        [{"role": "user", "content": "Three"}],  # the default thread: no conversation_id
    ]
    threads = await sync_to_async(lambda: sorted(Thread.objects.filter(guild=guild).values_list("conversation_id",
                                                                                                 flat=True)))()
    assert threads == ["", "conv_789"]


async def test_a_provider_that_is_down_gives_an_error_message_and_a_failed_run(rig, llm_settings):
    guild = await launched(rig, llm_spec("http://127.0.0.1:9/v1"))  # the discard port: nothing listens
    async with usercomms(guild.id) as user:
        await user.send(frame("Anyone there?"))
        own = await own_id_of(user)
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="the error")
    assert error["payload"]["error_type"] == "LLM_UNREACHABLE"
    assert "127.0.0.1:9" in error["payload"]["error_message"]
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.FAILED).first(), what="failed run")
    assert "cannot reach the model provider" in run.error
    assert run.cost_usd is None


async def test_with_no_provider_configured_the_error_says_what_to_set(rig, llm_settings, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm_settings.LLM_BASE_URL = "https://api.openai.com/v1"
    guild = await launched(rig, llm_spec(None, api_key_env="OPENAI_API_KEY"))
    async with usercomms(guild.id) as user:
        await user.send(frame("Hello?"))
        own = await own_id_of(user)
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="the error")
    assert error["payload"]["error_type"] == "LLM_NOT_CONFIGURED"
    assert "set OPENAI_API_KEY" in error["payload"]["error_message"]
    assert "LLM_BASE_URL" in error["payload"]["error_message"]
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.FAILED).first(), what="failed run")
    assert run.error == error["payload"]["error_message"]


async def test_a_429_is_retried_and_the_answer_still_arrives(rig, fake_llm, llm_settings):
    fake_llm.then(Answer(status=429, headers={"retry-after": "0"}), Answer(status=500), Answer(deltas=["Made it."]))
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    async with usercomms(guild.id) as user:
        await user.send(frame("Busy?"))
        reply = await user.until(is_reply(await own_id_of(user)), what="the reply")
    assert reply["payload"]["text"] == "Made it."
    assert len(fake_llm.requests) == 3
    assert await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).exists())
    assert not any(f["format"] == ERROR for f in user.frames)


async def test_an_unknown_model_has_tokens_but_no_cost(rig, fake_llm, llm_settings):
    fake_llm.then(Answer(model="house-model-7b"))
    guild = await launched(rig, llm_spec(fake_llm.base_url, model="house-model-7b"))
    async with usercomms(guild.id) as user:
        await user.send(frame("Hi"))
        await user.until(is_reply(await own_id_of(user)), what="the reply")
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.SUCCEEDED).first(), what="the run")
    assert run.input_tokens == 12
    assert run.cost_usd is None
    assert run.model == "house-model-7b"


async def test_run_status_changes_are_published_as_run_updates(rig, fake_llm, llm_settings):
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    updates = await sync_to_async(rig.observe)(guild, t.SYSTEM_TOPIC)
    async with usercomms(guild.id) as user:
        await user.send(frame("Hi"))
        await user.until(is_reply(await own_id_of(user)), what="the reply")
    await eventually(lambda: len(updates.of_format("runUpdate")) >= 2, what="two run updates")
    run = await sync_to_async(lambda: Run.objects.get(guild=guild))()
    assert [(m.payload["run_id"], m.payload["status"]) for m in updates.of_format("runUpdate")] == [
        (run.id, "running"), (run.id, "succeeded")]


async def test_the_original_formats_are_answered_and_small_text_files_are_given_to_the_model(
        rig, fake_llm, llm_settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from guilds.files import guild_file_upload

    guild = await launched(rig, llm_spec(fake_llm.base_url))
    for name, data, kind in [("notes.txt", b"The code word is heron.", "text/plain"),
                             ("photo.png", b"\x89PNG\x00\x00", "image/png")]:
        await sync_to_async(guild_file_upload)(guild=guild, user_id="testuser123", metadata={},
                                               upload=SimpleUploadedFile(name, data, content_type=kind))
    async with usercomms(guild.id) as user:
        await user.send({"format": "rustic_ai.core.ui_protocol.types.TextFormat", "payload": {"text": "typed"},
                         "id": "m1"})
        await user.until(is_reply(await own_id_of(user, "m1")), what="the TextFormat reply")
        await user.send({"format": "rustic_ai.core.ui_protocol.types.FilesWithTextFormat", "id": "m2",
                         "payload": {"files": [{"name": "notes.txt", "url": f"/api/guilds/{guild.id}/files/notes.txt"},
                                               {"name": "photo.png"}, {"name": "../../settings.py"}],
                                     "text": "Read these", "tagged_users": []}})
        reply = await user.until(is_reply(await own_id_of(user, "m2")), what="the files reply")
    assert reply["format"] == "text"
    asked = fake_llm.requests[1]["body"]["messages"][-1]["content"]
    assert asked.startswith("Read these")
    assert "--- file: notes.txt ---\nThe code word is heron." in asked
    assert "(attached file, not shown: photo.png)" in asked
    assert "(attached file, not shown: ../../settings.py)" in asked


async def test_the_original_systems_chat_completion_request_gets_a_chat_completion_response(rig, fake_llm, llm_settings):
    fake_llm.then(Answer(deltas=["Paris."]))
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    async with usercomms(guild.id) as user:
        await user.send({"format": "rustic_ai.core.guild.agent_ext.depends.llm.models.ChatCompletionRequest",
                         "id": "cc1", "payload": {"messages": [
                             {"role": "system", "content": "Answer in one word."},
                             {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}]}})
        own = await own_id_of(user, "cc1")
        reply = await user.until(lambda f: f.get("in_response_to") == own and f["format"].endswith("Response"),
                                 what="the ChatCompletionResponse")
    assert reply["format"] == "rustic_ai.core.guild.agent_ext.depends.llm.models.ChatCompletionResponse"
    assert reply["payload"]["choices"][0]["message"] == {"role": "assistant", "content": "Paris."}
    assert reply["payload"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert fake_llm.requests[0]["body"]["messages"] == [{"role": "system", "content": "Answer in one word."},
                                                        {"role": "user", "content": "Capital of France?"}]


async def test_a_message_posted_over_rest_to_the_llm_agent_returns_its_run_which_records_the_answer(
        rig, fake_llm, llm_settings):
    from rest_framework.test import APIClient

    from tests.factories import bearer, token

    llm_settings.AUTH_DISABLED = False
    fake_llm.then(Answer(deltas=["Posted ", "answer."]))
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    agent_id = guild.spec["agents"][0]["id"]
    api = APIClient()
    api.default_format = "json"
    access = await sync_to_async(token)("testuser123")
    async with Socket(f"/ws/guilds/{guild.id}/usercomms/testuser123/Test%20User?token={access}") as user:
        response = await sync_to_async(lambda: api.post(f"/api/guilds/{guild.id}/messages", {
            "format": "text", "payload": {"text": "From a script"}, "agent": agent_id, "conversation_id": "scripted"},
            **bearer("testuser123")))()
        assert response.status_code == 202, response.content
        sent = response.json()
        reply = await user.until(lambda f: f["format"] == "text" and f.get("in_response_to") == sent["id"],
                                 what="the answer on the user's socket")
    assert reply["payload"]["text"] == "Posted answer."
    run = await eventually(lambda: Run.objects.filter(pk=sent["run_id"], status=RunStatus.SUCCEEDED).first(),
                           what="the run, succeeded")
    assert (run.trigger, run.requester, run.agent_id, run.message_id) == ("api", "testuser123", agent_id, int(sent["id"]))
    assert (run.input_tokens, run.output_tokens) == (12, 5)
    assert await sync_to_async(lambda: Run.objects.filter(guild=guild).count())() == 1  # the queued row, not another
    thread = await sync_to_async(lambda: Thread.objects.get(pk=run.thread_id))()
    assert (thread.requester, thread.conversation_id) == ("testuser123", "scripted")


async def test_a_posted_message_the_agent_refuses_before_any_run_leaves_its_queued_run_failed(rig, fake_llm, llm_settings):
    from rest_framework.test import APIClient

    from tests.factories import bearer

    llm_settings.AUTH_DISABLED = False
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    api = APIClient()
    api.default_format = "json"
    response = await sync_to_async(lambda: api.post(f"/api/guilds/{guild.id}/messages", {
        "format": "rustic_ai.core.guild.agent_ext.depends.llm.models.ChatCompletionRequest", "payload": {"messages": []},
        "agent": guild.spec["agents"][0]["id"]}, **bearer("testuser123")))()
    assert response.status_code == 202, response.content
    run = await eventually(lambda: Run.objects.filter(pk=response.json()["run_id"], status=RunStatus.FAILED).first(),
                           what="the run failed, not queued for ever")
    assert run.error == "not handled: the agent did not start a run for this message"
    assert fake_llm.requests == []
