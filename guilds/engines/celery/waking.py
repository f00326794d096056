"""Who drains an agent with work newly due (the engine's side of durable delivery, `Waker`).

The store script pushes the drain onto the drain lane itself when it can (same Redis database as the
broker, an id that fits the template; guilds.engines.celery.lane). The web server drains its users' proxies
itself: what a user sends is routed into the guild without a hop to a worker (a proxy only routes; the lease
keeps it one at a time). Everything else is handed to the engine (the lane, else the Celery queue).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from guilds.engines.celery import lane, wire
from guilds.engines.celery.wire import DRAIN_SLICE_SECONDS, enqueue
from guilds.runtime import loop as runtime_loop
from guilds.spec import USER_PROXY_ID_PREFIX
from messaging.delivery import DrainPush
from messaging.delivery.durable import RedisStore

logger = logging.getLogger(__name__)

# Drains one agent until a deadline: (guild id, agent id, deadline) -> its outcome (retry_in, more).
DrainOne = Callable[[str, str, float], Awaitable[Any]]


class Waking:
    def __init__(self, drain: DrainOne, *, drains_user_proxies: bool, hand_off: Callable[[str, str], None]) -> None:
        self.drain = drain
        self.drains_user_proxies = drains_user_proxies
        self.hand_off = hand_off  # a drain now in a worker (the engine's: the drain lane, else the queue)
        self._local_drains: set[asyncio.Task[None]] = set()
        self._due_here: Counter[tuple[str, str]] = Counter()  # user proxies' drains started or pending here

    def wake(self, namespace: str, agent_ids: list[str]) -> None:
        for agent_id in agent_ids:
            if self.drains_user_proxies and agent_id.startswith(USER_PROXY_ID_PREFIX):
                self.drain_here(namespace, agent_id)
            else:
                self.hand_off(namespace, agent_id)

    def drain_push(self, backend: RedisStore) -> DrainPush | None:
        """Let the store script push drains onto the drain lane itself, unless the broker is another Redis
        database (listeners read the lane from the broker's); user proxies come back to `wake` where this
        process drains them."""
        if not backend.same_database(settings.CELERY_BROKER_URL):
            return None
        return DrainPush(lane.lane_key(wire.task_queue()), lane.TEMPLATE,
                         USER_PROXY_ID_PREFIX if self.drains_user_proxies else "")

    def draining_here(self, guild_id: str, agent_id: str) -> bool:
        """Whether a drain of this user proxy is under way or due in this process."""
        return self._due_here[(guild_id, agent_id)] > 0

    def drain_here(self, guild_id: str, agent_id: str, delay: float = 0) -> None:
        loop = runtime_loop.runtime_loop()
        key = (guild_id, agent_id)

        async def drain() -> None:
            try:
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
            finally:
                self._due_here[key] -= 1
                if self._due_here[key] <= 0:
                    del self._due_here[key]

        def start() -> None:
            self._due_here[key] += 1
            task = loop.create_task(drain(), context=contextvars.Context())
            self._local_drains.add(task)
            task.add_done_callback(self._local_drains.discard)

        if runtime_loop.in_loop(loop):
            start()
        else:
            loop.call_soon_threadsafe(start)
