"""What kind of process this is. Each process says so where it starts, never guessed from its command line:
the web server in guildsite.serve, Celery workers and beat in their start-up signals (guildsite.celery).
Management commands, shells and tests are OTHER."""

from __future__ import annotations

from enum import StrEnum


class ProcessRole(StrEnum):
    WEB = "web"  # serves HTTP and the sockets; drains its users' proxies itself
    WORKER = "worker"  # a Celery worker: hosts agents
    BEAT = "beat"  # Celery beat: health ticks and sweeps
    OTHER = "other"


_role = ProcessRole.OTHER


def set_role(role: ProcessRole) -> None:
    global _role
    _role = ProcessRole(role)


def role() -> ProcessRole:
    return _role
