"""What a server process does when it starts: relaunch the guilds that should be running.

Only in a process that serves (daphne, uvicorn, gunicorn), not in management commands or
tests that merely import the ASGI app. Runs in a thread so the server answers at once.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

logger = logging.getLogger(__name__)
_SERVERS = ("daphne", "uvicorn", "gunicorn", "hypercorn")


def is_server_process() -> bool:
    program = sys.argv[0] if sys.argv else ""
    return any(name in os.path.basename(program) or f"{os.sep}{name}{os.sep}" in program for name in _SERVERS)


def share_the_server_loop() -> None:
    """Under daphne, agents and buses live on the server's own event loop (guilds.runtime.loop):
    a message from a socket to an agent and back crosses no thread."""
    if not is_server_process():
        return
    server_loop = getattr(sys.modules.get("daphne.server"), "twisted_loop", None)
    if server_loop is None:
        logger.info("not under daphne: agents get a runtime loop of their own")
        return
    from guilds.runtime import loop as runtime_loop

    runtime_loop.install(server_loop)


def relaunch_live_guilds_in_background() -> None:
    from django.conf import settings

    if not settings.GUILDSITE_RELAUNCH_ON_START or not is_server_process():
        return

    def relaunch() -> None:
        from guilds.services import guilds_relaunch_live

        try:
            relaunched = guilds_relaunch_live()
            if relaunched:
                logger.info("relaunched %d guild(s) that were running before the restart: %s",
                            len(relaunched), ", ".join(relaunched))
        except Exception:
            logger.exception("relaunching guilds on start failed")

    threading.Thread(target=relaunch, name="guildsite-relaunch", daemon=True).start()
