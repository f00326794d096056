"""What the web process does when it starts (guildsite.asgi, when guilds.process says this is the web
server): share daphne's loop with the runtime, relaunch the guilds that should be running, in a
thread so the server answers at once, and (embedded) fire the schedules, send the webhooks and serve gRPC."""

from __future__ import annotations

import logging
import sys
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

from guilds import schedules, webhooks
from guilds.runtime import loop as runtime_loop
from guilds.services import guilds_relaunch_live

logger = logging.getLogger(__name__)


def share_the_server_loop() -> None:
    """Under daphne, agents and buses live on the server's own event loop (guilds.runtime.loop):
    a message from a socket to an agent and back crosses no thread."""
    server_loop = getattr(sys.modules.get("daphne.server"), "twisted_loop", None)
    if server_loop is None:
        logger.info("not under daphne: agents get a runtime loop of their own")
        return
    runtime_loop.install(server_loop)


def relaunch_live_guilds_in_background() -> None:
    if not settings.GUILDSITE_RELAUNCH_ON_START:
        return

    def relaunch() -> None:
        try:
            relaunched = guilds_relaunch_live()
            if relaunched:
                logger.info("relaunched %d guild(s) that were running before the restart: %s",
                            len(relaunched), ", ".join(relaunched))
        except Exception:
            logger.exception("relaunching guilds on start failed")
        finally:
            connections.close_all()  # this thread's, back to the pool: the thread ends here

    threading.Thread(target=relaunch, name="guildsite-relaunch", daemon=True).start()


def tick_schedules_in_background() -> None:
    """The embedded default's ticker (GUILDSITE_SCHEDULE_TICKER=inprocess): what Celery beat's task does in
    production, in a thread of this process, every GUILDSITE_SCHEDULE_TICK_SECONDS."""
    if settings.GUILDSITE_SCHEDULE_TICKER != "inprocess":
        return
    stop = threading.Event()

    def tick_forever() -> None:
        while not stop.wait(settings.GUILDSITE_SCHEDULE_TICK_SECONDS):
            close_old_connections()  # this thread's, as a request would (a database restarted meanwhile)
            try:
                schedules.tick()
            except Exception:
                logger.exception("a schedules tick failed; the next one tries again")

    threading.Thread(target=tick_forever, name="guildsite-schedules", daemon=True).start()


def send_webhooks_in_background() -> None:
    """The embedded default's webhook sender (GUILDSITE_WEBHOOK_SENDER=inprocess), started now so that deliveries
    left pending by the last run of the server are swept and sent again."""
    if settings.GUILDSITE_WEBHOOK_SENDER == "inprocess":
        webhooks.local_sender()


def serve_grpc_in_background() -> None:
    """The embedded default's gRPC server (GUILDSITE_GRPC_IN_PROCESS), on the runtime loop with the agents. A port
    that cannot be had is logged, not fatal: the site serves HTTP and WebSockets all the same."""
    if not settings.GUILDSITE_GRPC_IN_PROCESS or not settings.GRPC_PORT:
        return
    from guilds.grpc.server import grpc_server_start

    async def start() -> None:
        global _grpc_server
        try:
            _grpc_server, _ = await grpc_server_start(settings.GRPC_HOST, settings.GRPC_PORT)
        except Exception:
            logger.exception("gRPC not served: %s:%d could not be bound (GRPC_PORT=0 turns it off)",
                             settings.GRPC_HOST, settings.GRPC_PORT)

    runtime_loop.submit(start())


_grpc_server = None  # kept: a server nobody references is stopped


def sweep_external_presence_in_background() -> None:
    """Every external agents' heartbeat interval, agents gone quiet are marked offline and announced (each web
    process does it; the row's conditional update lets one of them win per agent)."""
    from guilds.external import presence

    def sweep_forever() -> None:
        while True:
            time.sleep(settings.GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS)
            close_old_connections()
            try:
                runtime_loop.run(presence.sweep())
            except Exception:
                logger.exception("the external agents' presence sweep failed; the next one tries again")

    threading.Thread(target=sweep_forever, name="guildsite-external-presence", daemon=True).start()
