"""Many sockets closing at once against a real server: each one is uncounted and unsubscribed. (Once, past
100 closing together, Redis's default pool refused the uncounting with "Too many connections": the user's
count stayed taken, so reconnecting was refused with 1008, and the closed sockets stayed subscribed.)"""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.e2e.test_socket_edge import ECHO
from tests.support.live_server import LiveServer, service_env

SOCKETS = 240


@pytest.fixture(scope="module")
def roomy_server():
    server = LiveServer(env={"GUILDSITE_WS_MAX_PER_USER": str(SOCKETS), **service_env()})
    server.migrate()
    server.start()
    yield server
    server.stop()


def launch(server: LiveServer) -> str:
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "BurstEcho", "author_id": "burst", "spec": {"name": "BurstEcho", "agents": [
            {"name": "EchoAgent", "class_name": ECHO, "additional_topics": ["echo_topic"],
             "listen_to_default_topic": False}]}})
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "burst", "user_id": "burster", "org_id": "burstorg"})
    assert status == 201, guild
    return guild["id"]


async def open_all(server: LiveServer, guild_id: str) -> list:
    gate = asyncio.Semaphore(40)

    async def one() -> object:
        async with gate:
            return await websockets.connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/burster/burster",
                                            open_timeout=30)

    return await asyncio.gather(*(one() for _ in range(SOCKETS)))


async def refused(ws) -> bool:
    """Whether the server refused this socket (it closes such a socket right after accepting it)."""
    try:
        async with asyncio.timeout(1.0):  # the window to see that close; an accepted socket stays quiet
            while True:
                await ws.recv()
    except TimeoutError:
        return False
    except websockets.ConnectionClosed as closed:
        return closed.rcvd is not None and closed.rcvd.code == 1008


def test_a_burst_of_closes_frees_every_socket_for_the_user(roomy_server):
    guild_id = launch(roomy_server)

    async def scenario() -> tuple[int, int]:
        first = await open_all(roomy_server, guild_id)
        await asyncio.gather(*(ws.close() for ws in first))  # all at once
        again = await open_all(roomy_server, guild_id)
        # The user's last allowed socket was taken by the second round only if every first one was uncounted.
        refusals = sum(await asyncio.gather(*(refused(ws) for ws in again)))
        extra = await websockets.connect(f"{roomy_server.ws_base}/ws/guilds/{guild_id}/usercomms/burster/burster")
        try:
            async with asyncio.timeout(10):
                while True:
                    await extra.recv()  # its error frame, then the close
        except TimeoutError:
            over = 0
        except websockets.ConnectionClosed as closed:
            over = closed.rcvd.code if closed.rcvd is not None else 1006
        await asyncio.gather(*(ws.close() for ws in again))
        return refusals, over

    refusals, over = asyncio.run(scenario())
    assert refusals == 0, f"{refusals} of {SOCKETS} sockets refused after the first {SOCKETS} closed"
    assert over == 1008  # and the limit still holds: one more than allowed is refused
