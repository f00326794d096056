"""Request bodies over their limit are refused with 413 as they arrive, not after.

daphne's HTTP side (twisted) takes a whole body in (into memory, then a temporary file) before the app sees the
request, so a limit checked by the app comes after the bytes are in. guildsite.serve gives daphne this request
class instead: a body declared larger than its path's limit is answered as soon as the headers are in, one sent
without a length as soon as it passes the limit; then the connection is closed, what still comes dropped unkept.
"""

from __future__ import annotations

import re
from io import BytesIO

import orjson
from daphne.http_protocol import WebRequest
from django.conf import settings
from twisted.internet import reactor

from guildsite.errors import problem

DRAIN_SECONDS = 5.0
_TRIGGER_EVENTS = re.compile(r"^/api/triggers/[^/]+/events/?$")


def limit_of(path: str) -> int:
    """The most bytes a request to `path` may carry."""
    if _TRIGGER_EVENTS.match(path):
        return settings.GUILDSITE_TRIGGER_MAX_BYTES
    return settings.GUILDSITE_HTTP_BODY_MAX_BYTES


class LimitedRequest(WebRequest):
    _limit = 0
    _taken = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        path = getattr(self.channel, "_path", b"/").split(b"?", 1)[0].decode("latin-1")
        self._limit = limit_of(path)
        if length is not None and length > self._limit:
            self.content = BytesIO()
            self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the refusal
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._taken += len(data)
        if self._taken > self._limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:  # a refused request never reaches the app
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        body = orjson.dumps(problem(413, "too_large", f"the body is over {self._limit} bytes"))
        transport = self.channel.transport
        transport.write(b"HTTP/1.1 413 Content Too Large\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        # Half-closed: a close with the client's bytes unread would reset the connection, and the client could lose
        # the answer. What it still sends is dropped unkept, for a few seconds at most.
        transport.loseWriteConnection()
        reactor.callLater(DRAIN_SECONDS, transport.abortConnection)
