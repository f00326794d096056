"""Write flow of one socket: whether the web server's write buffer for it has room for another frame.

daphne writes every frame it is handed into twisted's transport buffer at once, and that buffer grows
without limit while a client does not read. guildsite.serve makes each socket's transport tell a
WriteFlow when the buffer is full (twisted's producer API: paused over its bufferSize, 64 KiB, resumed
once it has drained), and puts the WriteFlow in the socket's scope; the consumer hands daphne the next
frame only when there is room, so what a slow client has not read waits in the consumer's outbox, which
is bounded (frames and bytes) and closes the socket with 4429.
"""

from __future__ import annotations

import asyncio
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

SCOPE_EXTENSION = "guildsite.write_flow"


@implementer(IPushProducer)
class WriteFlow:
    """Registered as the transport's streaming producer; `room()` waits until the buffer has drained."""

    def __init__(self) -> None:
        self._room = asyncio.Event()
        self._room.set()
        self.pauses = 0  # how often the buffer filled: for logs and tests

    @property
    def paused(self) -> bool:
        return not self._room.is_set()

    async def room(self) -> None:
        await self._room.wait()

    # IPushProducer: called by twisted on the server's loop (daphne runs twisted's asyncio reactor).
    def pauseProducing(self) -> None:
        if not self.paused:
            self.pauses += 1
        self._room.clear()

    def resumeProducing(self) -> None:
        self._room.set()

    def stopProducing(self) -> None:  # connection lost: nobody waits for a buffer that is gone
        self._room.set()


def write_flow(scope: dict[str, Any]) -> WriteFlow | None:
    """The socket's WriteFlow, or None where the server is not guildsite.serve (channels' test client)."""
    return (scope.get("extensions") or {}).get(SCOPE_EXTENSION)
