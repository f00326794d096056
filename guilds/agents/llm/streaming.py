"""Token chunks to the user while the model streams (seed 004's `assistant_token`, then `assistant_message`).

The first token goes out at once (it is what a user waits for); later ones are batched, flushed every
GUILDSITE_LLM_STREAM_FLUSH_SECONDS or GUILDSITE_LLM_STREAM_FLUSH_BYTES, so a fast model does not cost a
frame per token. Chunks are published ephemerally: nothing stores them, the final reply is the record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

STREAM_CHUNK = "stream_chunk"
ASSISTANT_TOKEN = "assistant_token"
ASSISTANT_MESSAGE = "assistant_message"
TOOL_OUTPUT = "tool_output"

Publish = Callable[[str, str, int, dict | None], Awaitable[None]]  # (chunk_type, content, seq, more payload)


class TokenStream:
    def __init__(self, publish: Publish, *, tokens: bool, interval: float, max_bytes: int) -> None:
        self._publish = publish
        self._tokens = tokens
        self._interval = interval
        self._max_bytes = max_bytes
        self._buffer: list[str] = []
        self._size = 0
        self._seq = 0
        self._sent_first = False
        self._last_flush = 0.0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._timer: asyncio.Task | None = None

    async def token(self, text: str) -> None:
        if not self._tokens:
            return
        self._buffer.append(text)
        self._size += len(text.encode())
        if not self._sent_first or self._size >= self._max_bytes:
            self._sent_first = True
            # Shielded: a run cancelled now must not lose this chunk halfway (finish() follows it, by the lock).
            await asyncio.shield(self._flush())
        elif self._timer is None:
            delay = max(0.0, self._last_flush + self._interval - asyncio.get_running_loop().time())
            self._timer = asyncio.create_task(self._later(delay))

    async def _later(self, delay: float) -> None:
        # Woken early (not cancelled) by finish(): a cancel could land inside a publish and lose a chunk.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        self._timer = None
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            content = "".join(self._buffer)
            self._buffer.clear()
            self._size = 0
            self._seq += 1
            self._last_flush = asyncio.get_running_loop().time()
            await self._publish(ASSISTANT_TOKEN, content, self._seq, None)

    async def tool_output(self, content: str, about: dict) -> None:
        """A tool call's result (`about` says which), after the tokens before it; sent with token chunks off too."""
        await self._flush()
        async with self._lock:
            self._seq += 1
            await self._publish(TOOL_OUTPUT, content, self._seq, about)

    async def finish(self, text: str) -> None:
        """What is still buffered, then the whole answer as `assistant_message`."""
        self._wake.set()
        while self._timer is not None:
            await self._timer
        await self._flush()
        async with self._lock:
            self._seq += 1
            await self._publish(ASSISTANT_MESSAGE, text, self._seq, None)

    async def close(self) -> None:
        """Stop without a final message (the call failed): no timer is left behind."""
        self._wake.set()
        while self._timer is not None:
            await self._timer
