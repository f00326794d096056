"""TokenStream's batching rules, on its own: first token at once, then by time or size, the answer last."""

from __future__ import annotations

import asyncio

from guilds.agents.llm.streaming import TokenStream


class Sent:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, str, int]] = []

    async def __call__(self, kind: str, content: str, seq: int, about: dict | None) -> None:
        self.chunks.append((kind, content, seq))


async def test_the_first_token_goes_at_once_and_a_full_batch_does_not_wait_for_the_timer():
    sent = Sent()
    stream = TokenStream(sent, tokens=True, interval=60.0, max_bytes=512)
    await stream.token("Hi")
    assert sent.chunks == [("assistant_token", "Hi", 1)]
    await stream.token("a" * 300)
    assert len(sent.chunks) == 1  # waits for the timer (a minute here) or more bytes
    await stream.token("b" * 300)
    assert sent.chunks[-1] == ("assistant_token", "a" * 300 + "b" * 300, 2)
    await stream.token("tail")
    await stream.finish("whole answer")  # does not wait out the minute
    assert sent.chunks[2:] == [("assistant_token", "tail", 3), ("assistant_message", "whole answer", 4)]


async def test_a_trickle_is_flushed_by_the_timer():
    sent = Sent()
    stream = TokenStream(sent, tokens=True, interval=0.02, max_bytes=512)
    await stream.token("one")
    await stream.token(" two")
    deadline = asyncio.get_running_loop().time() + 5
    while len(sent.chunks) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    assert sent.chunks == [("assistant_token", "one", 1), ("assistant_token", " two", 2)]
    await stream.finish("one two")


async def test_with_token_chunks_off_only_the_answer_goes():
    sent = Sent()
    stream = TokenStream(sent, tokens=False, interval=0.0, max_bytes=1)
    for token in ["a", "b", "c"]:
        await stream.token(token)
    await stream.finish("abc")
    assert sent.chunks == [("assistant_message", "abc", 1)]


async def test_a_tool_output_follows_the_tokens_before_it_and_goes_with_token_chunks_off_too():
    for tokens in (True, False):
        sent = Sent()
        stream = TokenStream(sent, tokens=tokens, interval=10.0, max_bytes=10_000)
        await stream.token("Let me ")
        await stream.token("look.")
        await stream.tool_output("Sunny", {"tool_name": "forecast", "tool_call_id": "c1"})
        await stream.finish("It is sunny.")
        expected = [("assistant_token", "Let me ", 1), ("assistant_token", "look.", 2), ("tool_output", "Sunny", 3),
                    ("assistant_message", "It is sunny.", 4)] if tokens else [
            ("tool_output", "Sunny", 1), ("assistant_message", "It is sunny.", 2)]
        assert sent.chunks == expected
