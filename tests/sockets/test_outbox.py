"""A socket's outbox at the consumer level: frames wait there while the server's write buffer for the socket is
full (its WriteFlow paused, as twisted pauses it under guildsite.serve), and past GUILDSITE_WS_OUTBOX_MAX_BYTES
the socket is closed with 4429; resuming with last_seen_id loses nothing. tests/e2e/test_slow_reader.py does the
same through a real server and a client that stops reading."""

from __future__ import annotations

import pytest

from guilds.sockets.flow import SCOPE_EXTENSION, WriteFlow
from tests.sockets.conftest import usercomms

pytestmark = pytest.mark.django_db(transaction=True)

PADDING = 20_000  # characters of text: each message and its echo reach the socket, so 5 sends are 200 kB


def text(frame: dict) -> str:
    return str((frame.get("payload") or {}).get("text") or "").split(" x", 1)[0]


def send(number_or_name: int | str) -> dict:
    name = number_or_name if isinstance(number_or_name, str) else f"big-{number_or_name}"
    padding = "" if isinstance(number_or_name, str) else " " + "x" * PADDING
    return {"id": name, "format": "text", "payload": {"text": name + padding}}


async def test_frames_wait_while_the_write_buffer_is_full_and_the_byte_bound_closes_4429(running_guild, settings):
    settings.GUILDSITE_WS_OUTBOX_MAX_BYTES = 64 * 1024  # the frame bound (10,000) is far off
    gid = running_guild.id
    flow = WriteFlow()
    slow = usercomms(gid)
    slow.communicator.scope["extensions"] = {SCOPE_EXTENSION: flow}  # what guildsite.serve's server adds
    async with slow, usercomms(gid) as reader:
        await reader.send(send("hello"))
        await reader.until(lambda f: text(f) == "Echo: hello", what="the echo, on the reading socket")
        last_read = await slow.until(lambda f: text(f) == "Echo: hello", what="the echo, with room to write it")

        flow.pauseProducing()  # the buffer is full: nothing more goes to this client
        for number in range(5):
            await reader.send(send(number))
        await reader.until(lambda f: text(f) == "Echo: big-4", what="the last echo")

        output = await slow.communicator.receive_output(timeout=10)
        assert output == {"type": "websocket.close", "code": 4429}  # no frame was sent while paused
        assert flow.pauses == 1

    expected = [f"big-{n}" for n in range(5)] + [f"Echo: big-{n}" for n in range(5)]
    async with usercomms(gid, query=f"?last_seen_id={last_read['id']}") as back:
        for name in expected:
            await back.until(lambda f, name=name: text(f) == name, what=name)
    assert sorted(text(f) for f in back.frames) == sorted(expected)  # each once

