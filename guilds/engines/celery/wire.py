"""The drain task on Celery's queue: for drains put off (a countdown), drains a failure handed back, beat's sweeps,
and wherever the drain lane cannot go (guilds.engines.celery.lane carries the per-message path)."""

from __future__ import annotations

import asyncio
import functools
import logging

logger = logging.getLogger(__name__)

DRAIN_TASK = "guilds.tasks.drain_agent"
DRAIN_SLICE_SECONDS = 2.0  # then a drain gives its worker slot back, so one busy agent cannot hold it


def celery_app():
    from celery import current_app

    return current_app


def task_queue() -> str:
    return celery_app().conf.task_default_queue


def send_drain(guild_id: str, agent_id: str, countdown: float | None = None) -> None:
    """Enqueue a drain task through Celery (blocking: never on an event loop)."""
    celery_app().send_task(DRAIN_TASK, args=(guild_id, agent_id), countdown=countdown)


def _send_logged(guild_id: str, agent_id: str, countdown: float | None) -> None:
    try:
        send_drain(guild_id, agent_id, countdown)
    except Exception as exc:  # the broker is away: the wake flag lapses and beat's sweep wakes the agent
        logger.warning("could not enqueue a drain task: %s", exc)


def enqueue(guild_id: str, agent_id: str, countdown: float | None = None) -> None:
    """A drain task for the agent on the Celery queue."""
    logger.debug("waking agent %s of guild %s", agent_id, guild_id)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        send_drain(guild_id, agent_id, countdown)
        return
    # Celery's client blocks (and retries while Redis is away): never on an event loop, which
    # under daphne is also the sockets'.
    loop.run_in_executor(None, functools.partial(_send_logged, guild_id, agent_id, countdown))
