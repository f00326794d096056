"""The drain task as Celery's Redis transport carries it, so that the store script can push one itself.

Built once by Celery's own message builder, with durable delivery's markers where the store script
writes the task id, the guild and the agent. tests/runtime/test_celery_wire.py compares it with what
`apply_async` sends, so a Celery upgrade that changes the message fails there, not in production.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from functools import cache

from messaging.delivery.durable import AGENT_MARK, NAMESPACE_MARK, TASK_ID_MARK

logger = logging.getLogger(__name__)

DRAIN_TASK = "guilds.tasks.drain_agent"
DRAIN_SLICE_SECONDS = 2.0  # then a drain gives its worker slot back, so one busy agent cannot hold it


def celery_app():
    from celery import current_app

    return current_app


def task_queue() -> str:
    return celery_app().conf.task_default_queue


@cache
def drain_task_template(queue: str) -> tuple[str, str]:
    """(list key, message) of a drain task on `queue`."""
    headers, properties, body, _ = celery_app().amqp.as_task_v2(
        TASK_ID_MARK, DRAIN_TASK, args=(NAMESPACE_MARK, AGENT_MARK), kwargs={}, ignore_result=True,
        origin="guildsite-store-script")
    message = {
        "body": json.dumps(body),  # no body_encoding: the transport takes it as it is
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {**properties, "delivery_mode": 2, "priority": 0, "delivery_tag": TASK_ID_MARK,
                       "delivery_info": {"exchange": "", "routing_key": queue}},
    }
    return queue, json.dumps(message)


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
