"""A WebSocket client on the ASGI app (channels' WebsocketCommunicator), speaking JSON frames: what the
socket tests and the permission matrix connect with."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.testing import WebsocketCommunicator


class Socket:
    def __init__(self, path: str, application: Any = None) -> None:
        if application is None:
            from guildsite.asgi import application
        self.path = path
        self.communicator = WebsocketCommunicator(application, path)
        self.frames: list[dict[str, Any]] = []
        self.connected = False

    async def connect(self) -> Socket:
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected, f"handshake refused for {self.path}"  # refusals too are accepted first
        self.connected = True
        return self

    async def __aenter__(self) -> Socket:
        return self if self.connected else await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.communicator.disconnect()

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        frame = json.loads(await self.communicator.receive_from(timeout=timeout))
        self.frames.append(frame)
        return frame

    async def until(self, predicate, timeout: float = 10, what: str = "a frame") -> dict[str, Any]:
        """The first frame (seen before, or arriving within `timeout`) that `predicate` accepts."""
        deadline = asyncio.get_running_loop().time() + timeout
        for frame in self.frames:
            if predicate(frame):
                return frame
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {[f.get('format') for f in self.frames]}")
            try:
                frame = await self.receive(timeout=left)
            except TimeoutError:
                continue
            if predicate(frame):
                return frame

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def refusal(self) -> tuple[dict[str, Any], int]:
        """(the error frame, the close code) of a refused socket."""
        frame = await self.receive()
        closing = await self.communicator.receive_output(timeout=5)
        assert closing["type"] == "websocket.close", closing
        return frame, closing["code"]
