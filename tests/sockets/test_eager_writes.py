"""guildsite.eager_writes on twisted's own TCP transport over a real socket pair: a frame reaches the peer in
the write call itself while nothing is buffered; what the kernel does not take goes through twisted's buffer,
and every byte arrives once and in order. (The server as a whole, flow control included: tests/e2e.)"""

from __future__ import annotations

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol

from guildsite.eager_writes import send_without_waiting


class RecordingReactor:
    """Stands in for the event loop: records which descriptors want to write, runs nothing by itself."""

    def __init__(self) -> None:
        self.writers: set = set()
        self.registrations = 0

    def addWriter(self, descriptor) -> None:
        self.registrations += 1
        self.writers.add(descriptor)

    def removeWriter(self, descriptor) -> None:
        self.writers.discard(descriptor)

    def addReader(self, descriptor) -> None:
        pass

    def removeReader(self, descriptor) -> None:
        pass


@pytest.fixture
def pair():
    ours, peer = socket.socketpair()
    reactor = RecordingReactor()
    transport = tcp.Connection(ours, Protocol(), reactor)
    transport.connected = True
    yield transport, peer, reactor
    ours.close()
    peer.close()


def read_available(peer: socket.socket) -> bytes:
    peer.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_a_frame_reaches_the_peer_within_the_write_call(pair):
    transport, peer, reactor = pair
    assert send_without_waiting(transport)
    transport.write(b"frame one")
    transport.write(b"frame two")
    assert read_available(peer) == b"frame oneframe two"
    assert reactor.registrations == 0  # no turn of the loop was asked for


def test_twisted_alone_waits_for_the_loop(pair):
    """What the change is measured against: without it nothing leaves before the loop's write turn."""
    transport, peer, reactor = pair
    transport.write(b"frame one")
    assert read_available(peer) == b""
    assert reactor.writers == {transport}


def test_what_the_kernel_does_not_take_is_buffered_and_arrives_in_order(pair):
    transport, peer, reactor = pair
    send_without_waiting(transport)
    big = bytes(range(256)) * 40_000  # 10 MB: more than the socket pair's buffers hold
    transport.write(big)
    assert reactor.writers == {transport}  # the rest waits for the loop
    transport.write(b"after")  # something buffered: this one queues behind it, never overtakes
    received = bytearray()
    for _ in range(10_000):
        received += read_available(peer)
        if transport in reactor.writers:
            transport.doWrite()  # the loop's write turn
        elif len(received) == len(big) + len(b"after"):
            break
    assert bytes(received) == big + b"after"
    assert transport.dataBuffer == b""
    assert not transport._tempDataBuffer


def test_a_closing_transport_keeps_twisted_s_path(pair):
    transport, peer, reactor = pair
    send_without_waiting(transport)
    transport.disconnecting = True
    transport.write(b"late")
    assert read_available(peer) == b""
    assert reactor.writers == {transport}


def test_a_transport_that_is_not_plain_tcp_is_left_alone():
    class Wrapped:
        def write(self, data: bytes) -> None:
            pass

    wrapped = Wrapped()
    assert not send_without_waiting(wrapped)
    assert "write" not in vars(wrapped)
