"""A client that stops reading, against a real server (python -m guildsite.serve, as `make run` and the Procfile
start it): what it has not read waits in its socket's outbox, not in the server's write buffer, and once that
outbox holds more than GUILDSITE_WS_OUTBOX_MAX_BYTES the socket is closed with 4429; resuming with
last_seen_id it gets everything it missed, once."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import receive_until
from tests.e2e.test_socket_edge import ECHO, closed_with
from tests.support.live_server import LiveServer, service_env

OUTBOX_MAX_BYTES = 512 * 1024
BIG = 100_000  # characters of text per message: both the message and its echo reach every socket of the user
COUNT = 60  # 12 MB for the slow socket: past the bound, the server's 64 KiB write buffer and the kernel's buffers


@pytest.fixture(scope="module")
def server():
    live = LiveServer(env={"GUILDSITE_WS_OUTBOX_MAX_BYTES": str(OUTBOX_MAX_BYTES),
                           "GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "GUILDSITE_HEARTBEAT_TIMEOUT": "3", **service_env()})
    live.migrate()
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def guild_id(server):
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "SlowEcho", "author_id": "slow", "organization_id": "sloworg",
        "spec": {"name": "SlowEcho", "agents": [{"name": "EchoAgent", "class_name": ECHO,
                                                 "additional_topics": ["echo_topic"],
                                                 "listen_to_default_topic": False}]}})
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "slow", "user_id": "slowuser", "org_id": "sloworg"})
    assert status == 201, guild
    return guild["id"]


def user_socket(server: LiveServer, guild_id: str, query: str = "", *, reads: bool = True):
    url = f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/slowuser/{quote('Slow User')}{query}"
    if reads:
        return connect(url, max_size=None, compression=None)
    # A client that stops reading: a small TCP window (set before connecting), and the client library
    # stops taking frames off the network once one is waiting unread.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", server.port))
    return connect(url, sock=sock, max_size=None, max_queue=1, compression=None)


def short(frame: dict) -> str:
    """`big-007`, `Echo: big-007` (without the padding), `hello`; "" for a frame that is no text."""
    text = str((frame.get("payload") or {}).get("text") or "")
    return text.split(" x", 1)[0]


def test_a_client_that_stops_reading_is_closed_4429_past_the_byte_bound_and_resumes_losing_nothing(server, guild_id):
    with user_socket(server, guild_id, reads=False) as slow, user_socket(server, guild_id) as reader:
        # Both sockets are subscribed and the user's proxy answers: a first exchange, read by both.
        reader.send(json.dumps({"id": "hello", "format": "text", "payload": {"text": "hello"}}))
        receive_until(reader, lambda f: short(f) == "Echo: hello", timeout=15)
        before: list[dict] = []
        receive_until(slow, lambda f: short(f) == "Echo: hello", timeout=15, seen=before)

        # The slow client reads nothing more while the guild sends it 2 x COUNT large frames.
        for n in range(COUNT):
            reader.send(json.dumps({"id": f"big-{n}", "format": "text",
                                    "payload": {"text": f"big-{n:03d} " + "x" * BIG}}))
        receive_until(reader, lambda f: short(f) == f"Echo: big-{COUNT - 1:03d}", timeout=60)

        code, unread = closed_with(slow, timeout=30)
        assert code == 4429, f"closed with {code} after {len(unread)} frames"
        before += unread
        assert len([f for f in before if short(f).startswith(("big", "Echo: big"))]) < 2 * COUNT  # it missed some

    last_seen = before[-1]["id"]
    expected = {f"big-{n:03d}" for n in range(COUNT)} | {f"Echo: big-{n:03d}" for n in range(COUNT)}
    with user_socket(server, guild_id, f"?last_seen_id={last_seen}") as back:
        after: list[dict] = []
        seen_now = {short(f) for f in before}
        while not expected <= seen_now | {short(f) for f in after}:
            receive_until(back, lambda f: short(f).startswith(("big", "Echo: big")), timeout=30, seen=after)
    texts = [short(f) for f in before + after if short(f).startswith(("big", "Echo: big"))]
    assert sorted(texts) == sorted(expected)  # each once: nothing lost, nothing twice
    # (Not "ids above last_seen": a reply's id derives from its request's, so it can be below an id stored
    # before it; the resume replays by position in the topic.)
    assert not {f["id"] for f in after} & {f["id"] for f in before}
