"""Frames sent at once: a WebSocket transport whose buffer is empty sends a frame in the same call.

twisted buffers every write and sends it on the loop's next turn: each frame costs registering the socket
for writing, a turn of the loop, the send and unregistering it again. A chat frame is small and the
kernel takes it whole almost always, so guildsite.serve makes each socket's transport try the send first
and fall back to twisted's buffer (and its flow control, guilds.sockets.flow) only for what the kernel did
not take. In a 20-user production echo run that took about a tenth of the web process's CPU per echo.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet import tcp

logger = logging.getLogger(__name__)

# The state read here is twisted's own (twisted.internet.abstract.FileDescriptor and tcp.Connection, pinned
# in requirements.txt); a transport without it keeps twisted's buffered write.
_STATE = ("dataBuffer", "offset", "_tempDataBuffer", "_writeDisconnected", "_writeDisconnecting", "_aborting", "TLS",
          "disconnecting", "connected")


class _SendsAtOnce:
    """Mixed into the transport's own class: `write` sends at once while nothing is buffered."""

    def write(self, data: bytes) -> None:
        if (type(data) is bytes and data and self.connected and not self.disconnecting and not self._aborting
                and not self.TLS and not self._writeDisconnected and not self._writeDisconnecting
                and not self._tempDataBuffer and self.offset == len(self.dataBuffer)):
            sent = self.writeSomeData(data)
            if isinstance(sent, int) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
            # Not all taken, or an error: twisted's own path buffers the rest (or finds the connection lost).
        super().write(data)


_CLASSES: dict[type, type] = {}


def send_without_waiting(transport: Any) -> bool:
    """Make `transport.write` send at once while nothing is buffered; False (left as it is) for a transport
    that is not twisted's own socket connection (TLS and proxy protocols wrap it)."""
    cls = type(transport)
    if not issubclass(cls, tcp.Connection):
        return False
    if issubclass(cls, _SendsAtOnce):
        return True
    if not all(hasattr(transport, name) for name in _STATE):
        logger.warning("this twisted's transport lacks the buffer state guildsite.eager_writes reads: frames wait "
                       "for the loop's next turn")
        return False
    eager = _CLASSES.get(cls)
    if eager is None:
        eager = _CLASSES[cls] = type(f"SendsAtOnce{cls.__name__}", (_SendsAtOnce, cls), {})
    transport.__class__ = eager
    return True
