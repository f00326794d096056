"""guildsite.eager_writes on twisted's own TCP transport over a real socket pair: a frame reaches the peer in
the write call itself while nothing is buffered; what the kernel does not take goes through twisted's buffer
and its flow control, and every byte arrives once and in order. (The server as a whole, flow control included: tests/e2e.)"""

from __future__ import annotations

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol

from guilds.sockets.flow import WriteFlow
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


def drain_through_the_loop(transport, peer: socket.socket, reactor: RecordingReactor, expected: int) -> bytes:
    received = bytearray()
    for _ in range(10_000):
        received += read_available(peer)
        if transport in reactor.writers:
            transport.doWrite()  # the loop's write turn
        elif len(received) >= expected:
            break
    return bytes(received)


BIG = bytes(range(256)) * 40_000  # 10 MB: more than the socket pair's buffers hold


def test_what_the_kernel_does_not_take_is_buffered_and_arrives_in_order(pair):
    transport, peer, reactor = pair
    send_without_waiting(transport)
    transport.write(BIG)
    assert reactor.writers == {transport}  # the rest waits for the loop
    transport.write(b"after")  # something buffered: this one queues behind it, never overtakes
    assert drain_through_the_loop(transport, peer, reactor, len(BIG) + 5) == BIG + b"after"
    assert transport.dataBuffer == b""
    assert not transport._tempDataBuffer


def test_a_write_while_part_of_the_buffer_is_sent_waits_behind_the_rest(pair):
    """The buffer half sent (twisted's offset into it) and the kernel with room again: still queued."""
    transport, peer, reactor = pair
    send_without_waiting(transport)
    transport.write(BIG)
    transport.doWrite()  # one turn: part of the buffer sent, the rest held at an offset
    assert 0 < transport.offset < len(transport.dataBuffer)
    early = read_available(peer)  # the kernel has room now
    transport.write(b"after")
    assert early + drain_through_the_loop(transport, peer, reactor, len(BIG) + 5 - len(early)) == BIG + b"after"


def test_a_buffer_over_its_size_pauses_the_socket_s_write_flow_until_it_drains(pair):
    transport, peer, reactor = pair
    flow = WriteFlow()
    transport.registerProducer(flow, True)
    send_without_waiting(transport)
    transport.write(BIG)
    assert flow.paused  # what the kernel did not take is over twisted's 64 KiB: the consumer holds its frames
    drain_through_the_loop(transport, peer, reactor, len(BIG))
    assert not flow.paused


def test_a_write_to_a_connection_the_peer_closed_is_left_to_twisted_to_find(pair):
    transport, peer, reactor = pair
    send_without_waiting(transport)
    peer.close()
    for _ in range(3):  # the first send may still land in the kernel; a later one meets the reset
        transport.write(b"x" * 100_000)
        if transport in reactor.writers:
            break
    assert transport in reactor.writers
    assert isinstance(transport.doWrite(), ConnectionLost)  # the loop's turn tells twisted: connectionLost follows


@pytest.mark.parametrize("state", ["disconnecting", "_aborting", "_writeDisconnecting"])
def test_a_closing_or_aborted_transport_keeps_twisted_s_path(pair, state):
    transport, peer, _ = pair
    send_without_waiting(transport)
    setattr(transport, state, True)
    transport.write(b"late")
    assert read_available(peer) == b""


def test_a_transport_that_is_not_twisted_s_own_socket_is_left_alone():
    class Wrapped:  # as TLS or the proxy protocol's wrapper would be
        def write(self, data: bytes) -> None:
            pass

    wrapped = Wrapped()
    assert not send_without_waiting(wrapped)
    assert type(wrapped) is Wrapped


def test_the_transport_stays_what_it_was_for_everyone_else(pair):
    transport, _, _ = pair
    send_without_waiting(transport)
    assert send_without_waiting(transport)  # twice: nothing more
    assert isinstance(transport, tcp.Connection)
    assert type(transport).__mro__[2] is tcp.Connection
