"""The Celery engine (engine.py), split by job: waking (who drains), lane (the per-message path to the workers),
drain (handling inboxes under a lease, dead letters), agents (the guild's control and its agents' delivery),
roster, wire (the drain task on Celery's queue) and beat (ticks and sweeps)."""

from guilds.engines import engine_named
from guilds.engines.celery.engine import CeleryEngine

__all__ = ["CeleryEngine", "engine"]


def engine() -> CeleryEngine:
    return engine_named("celery")
