"""Who drains an agent with work newly due (the engine's side of durable delivery, `Waker`).

The store script pushes a drain task itself when it can (same Redis database as the broker, an id
that fits the template). The web server drains its users' proxies itself: what a user sends is
routed into the guild without a broker round trip (a proxy only routes; the lease keeps it one at a
time). Everything else goes to the Celery queue.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from guilds.engines.celery import wire
from guilds.engines.celery.wire import DRAIN_SLICE_SECONDS, enqueue
from guilds.runtime import loop as runtime_loop
from guilds.spec import USER_PROXY_ID_PREFIX
from messaging.delivery import TaskEnqueue
from messaging.delivery.durable import RedisStore

logger = logging.getLogger(__name__)

# Drains one agent until a deadline: (guild id, agent id, deadline) -> its outcome (retry_in, more).
DrainOne = Callable[[str, str, float], Awaitable[Any]]


class Waking:
    def __init__(self, drain: DrainOne, *, drains_user_proxies: bool) -> None:
        self.drain = drain
        self.drains_user_proxies = drains_user_proxies
        self._local_drains: set[asyncio.Task[None]] = set()

    def wake(self, namespace: str, agent_ids: list[str]) -> None:
        for agent_id in agent_ids:
            if self.drains_user_proxies and agent_id.startswith(USER_PROXY_ID_PREFIX):
                self.drain_here(namespace, agent_id)
            else:
                enqueue(namespace, agent_id)

    def task_enqueue(self, backend: RedisStore) -> TaskEnqueue | None:
        """Let the store script enqueue drains itself, unless the broker is another Redis database; user
        proxies come back to `wake` where this process drains them."""
        if not backend.same_database(settings.CELERY_BROKER_URL):
            return None
        queue, template = wire.drain_task_template(wire.task_queue())
        return TaskEnqueue(queue, template, USER_PROXY_ID_PREFIX if self.drains_user_proxies else "")

    def drain_here(self, guild_id: str, agent_id: str, delay: float = 0) -> None:
        loop = runtime_loop.runtime_loop()

        async def drain() -> None:
            if delay:
                await asyncio.sleep(delay)
            try:
                outcome = await self.drain(guild_id, agent_id, time.monotonic() + DRAIN_SLICE_SECONDS)
            except Exception:
                logger.exception("draining user proxy %s failed; a worker takes it over", agent_id,
                                 extra={"guild_id": guild_id})
                enqueue(guild_id, agent_id, countdown=1)
                return
            if outcome.retry_in is not None:  # held elsewhere (its holder handles what waits), or backing off
                self.drain_here(guild_id, agent_id, outcome.retry_in)
            elif outcome.more:
                self.drain_here(guild_id, agent_id)

        def start() -> None:
            task = loop.create_task(drain(), context=contextvars.Context())
            self._local_drains.add(task)
            task.add_done_callback(self._local_drains.discard)

        if runtime_loop.in_loop(loop):
            start()
        else:
            loop.call_soon_threadsafe(start)
