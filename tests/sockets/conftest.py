from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from guilds.models import GuildStatus
from guildsite.asgi import application
from tests.runtime.conftest import celery_workers, echo_spec, rig  # noqa: F401 - shared fixtures

REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"


@pytest.fixture
def running_guild(rig):  # noqa: F811 - pytest fixture injection
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    return guild


class Socket:
    """A WebSocket client on the ASGI app, speaking JSON frames."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.communicator = WebsocketCommunicator(application, path)
        self.frames: list[dict[str, Any]] = []

    async def __aenter__(self) -> Socket:
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected, f"handshake refused for {self.path}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.communicator.disconnect()

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        frame = json.loads(await self.communicator.receive_from(timeout=timeout))
        self.frames.append(frame)
        return frame

    async def until(self, predicate, timeout: float = 10, what: str = "a frame") -> dict[str, Any]:
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


def syscomms(guild_id: str, user_id: str = "testuser123") -> Socket:
    return Socket(f"/ws/guilds/{guild_id}/syscomms/{user_id}")


def usercomms(guild_id: str, user_id: str = "testuser123", user_name: str = "Test%20User", query: str = "") -> Socket:
    return Socket(f"/ws/guilds/{guild_id}/usercomms/{user_id}/{user_name}{query}")
