"""`manage.py rungrpc [--host H] [--port P]`: seed 003's gRPC services in a process of their own (production: the
Procfile's `grpc`), until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from guilds.runtime import loop as runtime_loop


class Command(BaseCommand):
    help = "Serve seed 003's gRPC interface (agent registration, status, commands, brokers) and gRPC health."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.GRPC_HOST)
        parser.add_argument("--port", type=int, default=settings.GRPC_PORT or 50051)

    def handle(self, *args, host: str, port: int, **options) -> None:
        from guilds.grpc.server import grpc_server_start, grpc_server_stop

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):  # before serving: a signal at any time from now stops it
            signal.signal(signum, lambda *_: stop.set())
        server, bound = runtime_loop.run(grpc_server_start(host, port))
        self.stdout.write(f"gRPC serving on {host}:{bound}")
        self.stdout.flush()
        stop.wait()
        runtime_loop.run(grpc_server_stop(server), timeout=15)
