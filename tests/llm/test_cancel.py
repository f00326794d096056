"""Cancelling a run mid-answer, from the user socket (`cancelRequest`) and over REST (POST /api/runs/{id}/cancel):
the provider's stream is closed, the partial answer is kept (sent and stored), the run marked cancelled."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from guilds.models import Run, RunStatus, ThreadMessage
from messaging import topics as t
from tests import factories
from tests.llm.conftest import llm_spec
from tests.llm.test_llm_agent import ERROR, eventually, frame, is_reply, launched, own_id_of, usercomms
from tests.support.fake_llm import Answer
from tests.support.sockets import Socket

pytestmark = pytest.mark.django_db(transaction=True)

STORY = ["Once ", "upon ", "a ", "time."]
PARTIAL = "Once upon "  # what the fake sends before it holds the stream open


def streamed(user: Socket) -> str:
    return "".join(f["payload"]["content"] for f in user.frames
                   if f["format"] == "stream_chunk" and f["payload"]["chunk_type"] == "assistant_token")


async def story_guild(rig, fake_llm):
    """A guild whose model, asked once, sends PARTIAL and then holds its stream open."""
    fake_llm.then(Answer(deltas=STORY, hold_after=2))
    return await launched(rig, llm_spec(fake_llm.base_url))


async def a_held_stream(user: Socket) -> tuple[str, str]:
    await user.send(frame("Tell me a story"))
    own = await own_id_of(user)
    await user.until(lambda f: streamed(user) == PARTIAL, what="the first tokens")
    chunk = next(f for f in user.frames if f["format"] == "stream_chunk")
    return own, chunk["payload"]["run_id"]


async def assert_cancelled_with_the_partial_answer(guild, user: Socket, own: str, run_id: str, fake_llm, updates) -> None:
    reply = await user.until(is_reply(own), what="the partial answer as the reply")
    assert reply["payload"]["text"] == PARTIAL
    final = [f["payload"] for f in user.frames
             if f["format"] == "stream_chunk" and f["payload"]["chunk_type"] == "assistant_message"]
    assert [(c["content"], c["run_id"]) for c in final] == [(PARTIAL, run_id)]
    assert not [f for f in user.frames if f["format"] == ERROR]
    assert await sync_to_async(fake_llm.hung_up.wait)(10), "the provider's stream was not closed"

    run = await eventually(lambda: Run.objects.filter(pk=run_id, status=RunStatus.CANCELLED).first(), what="cancelled")
    assert run.error == "cancelled on request"
    assert run.time_to_first_token_ms is not None
    assert run.finished_at is not None
    # The provider reports usage at the stream's end: what the run spent is estimated, so budgets count it.
    assert run.output_tokens == len(PARTIAL) // 4
    assert run.input_tokens > 0
    assert run.cost_usd is not None
    assert run.cost_usd > 0
    assert any("estimated" in note for note in run.notes)
    stored = await sync_to_async(lambda: list(ThreadMessage.objects.filter(thread_id=run.thread_id).order_by("id")
                                              .values_list("role", "content", "bus_message_id")))()
    assert stored == [("user", "Tell me a story", int(own)), ("assistant", PARTIAL, int(reply["id"]))]
    await eventually(lambda: len(updates.of_format("runUpdate")) >= 2, what="the run updates")
    assert [m.payload["status"] for m in updates.of_format("runUpdate")] == ["running", "cancelled"]


async def test_a_cancel_request_on_the_user_socket_stops_the_answer_and_keeps_what_came(rig, fake_llm, llm_settings):
    guild = await story_guild(rig, fake_llm)
    updates = await sync_to_async(rig.observe)(guild, t.SYSTEM_TOPIC)
    async with usercomms(guild.id) as user:
        own, run_id = await a_held_stream(user)
        await user.send({"id": "stop-1", "format": "cancelRequest", "payload": {"run_id": run_id}})
        await assert_cancelled_with_the_partial_answer(guild, user, own, run_id, fake_llm, updates)

        # The socket goes on; the ended run can no longer be cancelled.
        await user.send({"id": "stop-2", "format": "cancelRequest", "payload": {"run_id": run_id}})
        refused = await user.until(lambda f: f.get("client_message_id") == "stop-2", what="the refusal")
        assert refused["payload"]["error_type"] == "RUN_ENDED"


async def test_a_cancel_over_rest_stops_the_answer_and_a_second_one_is_409(rig, fake_llm, llm_settings):
    guild = await story_guild(rig, fake_llm)
    updates = await sync_to_async(rig.observe)(guild, t.SYSTEM_TOPIC)
    api = APIClient()
    async with usercomms(guild.id) as user:
        own, run_id = await a_held_stream(user)
        response = await sync_to_async(api.post)(f"/api/runs/{run_id}/cancel")
        assert response.status_code == 202, response.content
        await assert_cancelled_with_the_partial_answer(guild, user, own, run_id, fake_llm, updates)
    again = await sync_to_async(api.post)(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409, again.content
    assert "nothing to cancel" in again.json()["detail"]


@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)  # the socket's own checks: one engine is enough
async def test_a_cancel_request_the_socket_cannot_act_on_gets_an_error_and_the_socket_goes_on(rig, fake_llm, llm_settings):
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    other = await launched(rig, llm_spec(fake_llm.base_url))
    ended = await sync_to_async(factories.run)(guild, agent_id="llm")
    elsewhere = await sync_to_async(factories.run)(other, agent_id="llm", status="running")
    async with usercomms(guild.id) as user:
        for client_id, payload, error_type in [
            ("c1", {"run_id": "no-such-run"}, "NOT_FOUND"),
            ("c2", {"run_id": elsewhere.id}, "NOT_FOUND"),  # a run of another guild is not this socket's
            ("c3", {"run_id": ended.id}, "RUN_ENDED"),
            ("c4", {"run_id": 42}, "INVALID_FRAME"),
            ("c5", {"run_id": "x" * 65}, "INVALID_FRAME"),
            ("c6", None, "INVALID_FRAME"),
        ]:
            await user.send({"id": client_id, "format": "cancelRequest", "payload": payload})
            refused = await user.until(lambda f, c=client_id: f.get("client_message_id") == c, what=client_id)
            assert (refused["format"], refused["payload"]["error_type"]) == (ERROR, error_type), refused
        await user.send(frame("Still there?"))
        reply = await user.until(is_reply(await own_id_of(user)), what="an answer after the refusals")
    assert reply["payload"]["text"] == "Hello from the fake model."
    assert await sync_to_async(lambda: Run.objects.get(pk=elsewhere.id).status)() == RunStatus.RUNNING


async def test_a_run_cancelled_before_its_first_token_ends_with_an_error_saying_so(rig, fake_llm, llm_settings):
    fake_llm.then(Answer(deltas=STORY, hold_after=0))  # headers, then nothing
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    async with usercomms(guild.id) as user:
        await user.send(frame("Tell me a story"))
        own = await own_id_of(user)
        await eventually(lambda: fake_llm.requests, what="the provider asked")  # and holding its stream
        run = await sync_to_async(lambda: Run.objects.get(guild=guild))()
        cancelled = await sync_to_async(APIClient().post)(f"/api/runs/{run.id}/cancel")
        assert cancelled.status_code == 202, cancelled.content
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="the error")
    assert error["payload"]["error_type"] == "RUN_CANCELLED"
    assert await sync_to_async(fake_llm.hung_up.wait)(10), "the provider's stream was not closed"
    assert not [f for f in user.frames if is_reply(own)(f)]
    final = [f["payload"]["content"] for f in user.frames
             if f["format"] == "stream_chunk" and f["payload"]["chunk_type"] == "assistant_message"]
    assert final == [""]
    run = await eventually(lambda: Run.objects.filter(pk=run.id, status=RunStatus.CANCELLED).first(), what="cancelled")
    assert run.time_to_first_token_ms is None
    stored = await sync_to_async(lambda: list(ThreadMessage.objects.filter(thread_id=run.thread_id)
                                              .values_list("role", flat=True)))()
    assert stored == ["user"]


async def test_a_thread_deleted_while_its_answer_streams_leaves_the_run_finished_and_nothing_stored(
        rig, fake_llm, llm_settings):
    fake_llm.then(Answer(deltas=STORY, hold_after=2))
    guild = await launched(rig, llm_spec(fake_llm.base_url))
    async with usercomms(guild.id) as user:
        own, run_id = await a_held_stream(user)
        run = await sync_to_async(lambda: Run.objects.get(pk=run_id))()
        await sync_to_async(lambda: run.thread.delete())()  # what DELETE /api/threads/{id} does
        cancelled = await sync_to_async(APIClient().post)(f"/api/runs/{run_id}/cancel")  # lets the held stream end
        assert cancelled.status_code == 202, cancelled.content
        reply = await user.until(is_reply(own), what="the partial answer")
    assert reply["payload"]["text"] == PARTIAL  # the user still sees it; the thread they threw away keeps nothing
    run = await eventually(lambda: Run.objects.filter(pk=run_id, status=RunStatus.CANCELLED).first(), what="finished")
    assert run.thread_id is None
    assert not await sync_to_async(lambda: ThreadMessage.objects.filter(run_id=run_id).exists())()
    assert not [f for f in user.frames if f["format"] == ERROR]
