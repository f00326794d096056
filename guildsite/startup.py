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
