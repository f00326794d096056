"""`python -m guildsite.serve [daphne's arguments]`: the web process. It says it is one (guilds.process), then
runs daphne, whose loading of guildsite.asgi then shares daphne's loop and relaunches the live guilds.

Four things of the WebSocket edge are set here, where daphne's server is made: a protocol error (a text
frame that is not UTF-8, a frame over GUILDSITE_WS_FRAME_HARD_MAX_BYTES) closes the socket with its code
(1007, 1009) and a close frame instead of dropping the connection (which a client sees as 1006), that
hard limit is daphne's message and frame limit, and each socket's write buffer is flow-controlled
(guilds.sockets.flow): a client that does not read makes frames wait in its consumer's bounded outbox,
not in twisted's unbounded buffer. A socket's frame is sent at once while nothing waits in its buffer
(guildsite.eager_writes).
"""

from __future__ import annotations

import os
import sys

from guilds import process

# A client closed for being slow (4429) first reads what is buffered for it, then the close frame; autobahn's
# default (1 s) would abort the connection before a slow client gets there, and it would see 1006.
CLOSE_HANDSHAKE_SECONDS = 10.0
SERVER_CLOSE_CODES = {1001, 1008, 1011}  # sent by guildsite's sockets besides 1000 and 4xxx


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    process.set_role(process.ProcessRole.WEB)
    # A thread per request (Django under ASGI): connections from a pool, not one kept per thread (settings).
    os.environ.setdefault("GUILDSITE_DB_POOL_SIZE", "20")
    import django

    django.setup()
    from autobahn.util import encode_truncate
    from daphne import server as daphne_server
    from daphne.cli import CommandLineInterface
    from daphne.ws_protocol import WebSocketProtocol
    from django.conf import settings

    from guilds.sockets.flow import SCOPE_EXTENSION, WriteFlow
    from guildsite.body_limit import LimitedRequest
    from guildsite.eager_writes import send_without_waiting

    class FlowControlledProtocol(WebSocketProtocol):
        def connectionMade(self) -> None:
            super().connectionMade()
            # The HTTP channel the socket was upgraded from is its transport's producer and has nothing
            # left to do there; the socket's WriteFlow takes its place, so twisted says when the buffer fills.
            self.write_flow = WriteFlow()
            self.transport.unregisterProducer()
            self.transport.registerProducer(self.write_flow, True)
            send_without_waiting(self.transport)

        def sendClose(self, code: int | None = None, reason: str | None = None) -> None:
            # RFC 6455 lets a server close with 1008 (policy: too many sockets) and 1011 (the guild's bus is
            # unavailable); autobahn's sendClose takes only 1000 and 3000-4999 and raised instead.
            if code in SERVER_CLOSE_CODES:
                self.sendCloseFrame(code=code, reasonUtf8=encode_truncate(reason, 123) if reason else None,
                                    isReply=False)
                return
            super().sendClose(code, reason)

    class ClosingWebSocketFactory(daphne_server.WebSocketFactory):
        protocol = FlowControlledProtocol

        def setProtocolOptions(self, **options: object) -> None:  # autobahn's name
            super().setProtocolOptions(**{**options, "failByDrop": False,
                                          "closeHandshakeTimeout": CLOSE_HANDSHAKE_SECONDS})

    class FlowServer(daphne_server.Server):
        def create_application(self, protocol, scope):
            flow = getattr(protocol, "write_flow", None)
            if flow is not None:
                scope = {**scope, "extensions": {**(scope.get("extensions") or {}), SCOPE_EXTENSION: flow}}
            return super().create_application(protocol, scope)

    class LimitedHTTPFactory(daphne_server.HTTPFactory):
        def buildProtocol(self, addr):
            protocol = super().buildProtocol(addr)
            protocol.requestFactory = LimitedRequest  # bodies over their limit refused as they arrive
            return protocol

    class GuildsiteCommandLine(CommandLineInterface):
        server_class = FlowServer

    daphne_server.WebSocketFactory = ClosingWebSocketFactory  # the factories daphne's Server.run makes
    daphne_server.HTTPFactory = LimitedHTTPFactory
    hard_max = str(settings.GUILDSITE_WS_FRAME_HARD_MAX_BYTES)
    arguments = sys.argv[1:]
    for option in ("--websocket-max-message-size", "--websocket-max-frame-size"):
        if option not in arguments:
            arguments = [option, hard_max, *arguments]
    sys.argv = ["daphne", *arguments]
    GuildsiteCommandLine.entrypoint()


if __name__ == "__main__":
    main()
