"""`python -m guildsite.serve [daphne's arguments]`: the web process. It says it is one (guilds.process), then
runs daphne, whose loading of guildsite.asgi then shares daphne's loop and relaunches the live guilds.

Two things of the WebSocket edge are set here, where daphne's server is made: a protocol error (a text
frame that is not UTF-8, a frame over GUILDSITE_WS_FRAME_HARD_MAX_BYTES) closes the socket with its code
(1007, 1009) and a close frame instead of dropping the connection (which a client sees as 1006), and that
hard limit is daphne's message and frame limit.
"""

from __future__ import annotations

import os
import sys

from guilds import process


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    process.set_role(process.ProcessRole.WEB)
    import django

    django.setup()
    from daphne import server as daphne_server
    from daphne.cli import CommandLineInterface
    from django.conf import settings

    class ClosingWebSocketFactory(daphne_server.WebSocketFactory):
        def setProtocolOptions(self, **options: object) -> None:  # autobahn's name
            super().setProtocolOptions(**{**options, "failByDrop": False})

    daphne_server.WebSocketFactory = ClosingWebSocketFactory  # the factory daphne's Server.run makes
    hard_max = str(settings.GUILDSITE_WS_FRAME_HARD_MAX_BYTES)
    arguments = sys.argv[1:]
    for option in ("--websocket-max-message-size", "--websocket-max-frame-size"):
        if option not in arguments:
            arguments = [option, hard_max, *arguments]
    sys.argv = ["daphne", *arguments]
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
