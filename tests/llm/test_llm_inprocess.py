"""What only the embedded engine lets a test change while a guild runs: the site's settings."""

from __future__ import annotations

import pytest

from guilds.models import Run, RunStatus
from tests.llm.conftest import llm_spec
from tests.llm.test_llm_agent import ERROR, eventually, frame, is_reply, launched, own_id_of, usercomms
from tests.runtime.conftest import GuildRig
from tests.support.fake_llm import Answer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def embedded(transactional_db, settings):
    rig = GuildRig("inprocess")
    yield rig
    rig.cleanup()


async def test_the_guard_rails_hold_again_at_call_time(embedded, fake_llm, llm_settings):
    guild = await launched(embedded, llm_spec(fake_llm.base_url))
    llm_settings.GUILDSITE_LLM_HOSTS = ["api.openai.com"]  # the site no longer allows the spec's host
    async with usercomms(guild.id) as user:
        await user.send(frame("Hi"))
        own = await own_id_of(user)
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="the error")
    assert error["payload"]["error_type"] == "LLM_NOT_ALLOWED"
    assert error["payload"]["error_message"].startswith("base_url: host '127.0.0.1:")
    assert fake_llm.requests == []
    assert await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.FAILED).exists())


async def test_token_chunks_can_be_turned_off(embedded, fake_llm, llm_settings):
    llm_settings.LLM_TOKEN_STREAM = False
    guild = await launched(embedded, llm_spec(fake_llm.base_url))
    async with usercomms(guild.id) as user:
        await user.send(frame("Hi"))
        reply = await user.until(is_reply(await own_id_of(user)), what="the reply")
    chunks = [f["payload"]["chunk_type"] for f in user.frames if f["format"] == "stream_chunk"]
    assert chunks == ["assistant_message"]
    assert reply["payload"]["text"] == "Hello from the fake model."


async def test_chunks_are_not_stored_and_a_reconnecting_client_gets_the_final_reply(embedded, fake_llm, llm_settings):
    guild = await launched(embedded, llm_spec(fake_llm.base_url))
    async with usercomms(guild.id) as user:
        await user.send(frame("Hi"))
        reply = await user.until(is_reply(await own_id_of(user)), what="the reply")
    async with usercomms(guild.id) as again:  # history replayed on connect
        replayed = await again.until(lambda f: f.get("id") == reply["id"], what="the reply replayed")
        assert await again.nothing()
    assert replayed["payload"]["text"] == reply["payload"]["text"]
    assert not any(f["format"] == "stream_chunk" for f in again.frames)


async def test_a_stream_that_stalls_past_the_timeout_fails_the_run_with_a_timeout(embedded, fake_llm, llm_settings):
    llm_settings.GUILDSITE_LLM_TIMEOUT_SECONDS = 0.3
    fake_llm.then(Answer(deltas=["Slow", " and", " stuck"], delay=2.0))
    guild = await launched(embedded, llm_spec(fake_llm.base_url))
    async with usercomms(guild.id) as user:
        await user.send(frame("Hi"))
        own = await own_id_of(user)
        error = await user.until(lambda f: f["format"] == ERROR and f.get("in_response_to") == own, what="the error")
    assert error["payload"]["error_type"] == "LLM_TIMEOUT"
    tokens = [f["payload"]["content"] for f in user.frames if f["format"] == "stream_chunk"]
    assert tokens == ["Slow"]  # what was streamed before the stall; no final message
    assert len(fake_llm.requests) == 1  # not retried once tokens went out
    run = await eventually(lambda: Run.objects.filter(guild=guild, status=RunStatus.FAILED).first(), what="failed run")
    assert "did not answer within 0.3 s" in run.error
