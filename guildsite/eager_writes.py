"""Frames sent at once: a WebSocket transport whose buffer is empty sends a frame in the same call.

twisted buffers every write and sends it on the loop's next turn: each frame costs registering the socket
for writing, a turn of the loop, the send and unregistering it again. A chat frame is small and the
kernel takes it whole almost always, so guildsite.serve makes each socket's transport try the send first
and fall back to twisted's buffer (and its flow control, guilds.sockets.flow) only for what the kernel did
not take. In a 20-user production echo run that took about a tenth of the web process's CPU per echo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp

# The buffer state read here is twisted's own (twisted.internet.abstract.FileDescriptor, pinned in
# requirements.txt); a transport without it keeps twisted's buffered write.
_BUFFER_STATE = ("dataBuffer", "offset", "_tempDataBuffer", "_writeDisconnected", "_writeDisconnecting")


def send_without_waiting(transport: Any) -> bool:
    """Make `transport.write` send at once while nothing is buffered; False (left as it is) for a transport
    that is not plain TCP (TLS wraps it) or lacks the buffer state read here."""
    if not isinstance(transport, tcp.Connection) or not all(hasattr(transport, name) for name in _BUFFER_STATE):
        return False
    buffered_write: Callable[[bytes], None] = transport.write

    def write(data: bytes) -> None:
        if (data and transport.connected and not transport.disconnecting and not transport._writeDisconnected
                and not transport._writeDisconnecting and not transport._tempDataBuffer
                and transport.offset == len(transport.dataBuffer)):
            sent = transport.writeSomeData(data)
            if isinstance(sent, int) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
            # Not all taken, or an error: twisted's own path buffers the rest (or finds the connection lost).
        buffered_write(data)

    transport.write = write
    return True
