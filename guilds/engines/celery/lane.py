"""The drain lane: how a stored message reaches a worker without passing through Celery's broker.

The store script pushes each agent it wakes onto a plain Redis list (the lane), in the same atomic step that
stores the message; every worker process keeps one connection blocked on that list and starts the drain at
once. Celery's hand-off (the worker's main process taking a task, handing it to a pool process, acknowledging
it) was about half of a one-user echo's time in production. Celery still carries what is not per message: a
drain put off (its agent's lease held elsewhere, a back-off), a drain that failed on an outage, beat's ticks
and sweeps.

A listener moves each item into a list of its own (`held`) while it drains it, and removes it once the drain
is over. The pool process that replaces a dead one (same worker, same slot) drains its predecessor's held items
first, so a drain a kill interrupted starts again at once. The items of a worker that never comes back stay
held: their agents' wake flags lapse and beat's sweep wakes them, as it does for a lost Celery task.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from guilds.engines.celery.wire import enqueue
from messaging.delivery.durable import AGENT_MARK, NAMESPACE_MARK

logger = logging.getLogger(__name__)

TEMPLATE = json.dumps([NAMESPACE_MARK, AGENT_MARK])  # what the store script pushes: [guild id, agent id]
WAIT_SECONDS = 5  # a blocked read gives up after this and blocks again (a closed connection shows then)
DRAINS_PER_PROCESS = 32  # beyond this a process leaves the lane's items to the others
OUTAGE_PAUSE_SECONDS = (0.25, 5.0)  # first and longest pause before reading the lane again after a failure
STOP_GRACE_SECONDS = 5.0  # a process going away lets its drains under way end this long, then hands them back

# One drain: (guild id, agent id, redelivered) -> its outcome (retry_in, more), as the drain task's work.
DrainTask = Callable[[str, str, bool], Awaitable[Any]]


async def push(client: Any, lane: str, guild_id: str, agent_id: str) -> None:
    """A drain of the agent onto the lane, as the store script pushes one (its wake flag is set already)."""
    await client.lpush(lane, json.dumps([guild_id, agent_id]))


def lane_key(queue: str) -> str:
    return f"gs:lane:{queue}"


def held_key(queue: str, node: str, slot: int) -> str:
    return f"gs:lane:{queue}:held:{node}:{slot}"


class LaneListener:
    def __init__(self, client: Any, queue: str, node: str, slot: int, drain_task: DrainTask) -> None:
        self.redis = client  # its own connection: a blocked read holds it
        self.lane = lane_key(queue)
        self.held = held_key(queue, node, slot)
        self.drain_task = drain_task
        self._slots = asyncio.Semaphore(DRAINS_PER_PROCESS)
        self._drains: set[asyncio.Task[None]] = set()
        self._reading: asyncio.Task[None] | None = None
        self._blocking_move = True  # BLMOVE (Redis 6.2); BRPOPLPUSH, the same move, before it

    async def run(self) -> None:
        self._reading = asyncio.current_task()
        pause = OUTAGE_PAUSE_SECONDS[0]
        reclaimed = False
        while True:
            await self._slots.acquire()
            try:
                if not reclaimed:
                    await self._reclaim()
                    reclaimed = True
                item = await self._take()
            except (RedisError, OSError) as exc:
                self._slots.release()
                logger.warning("the drain lane cannot be read (again in %.2f s): %s", pause, exc)
                await asyncio.sleep(pause)  # Redis away: its items wait in the lane meanwhile
                pause = min(OUTAGE_PAUSE_SECONDS[1], pause * 2)
                continue
            except BaseException:
                self._slots.release()
                raise
            pause = OUTAGE_PAUSE_SECONDS[0]
            if item is None:
                self._slots.release()
                continue
            self._start(item)

    async def _take(self) -> bytes | None:
        if self._blocking_move:
            try:
                return await self.redis.blmove(self.lane, self.held, WAIT_SECONDS, "RIGHT", "LEFT")
            except ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                self._blocking_move = False
        return await self.redis.brpoplpush(self.lane, self.held, WAIT_SECONDS)

    async def _reclaim(self) -> None:
        """The slot's previous process died holding these: drained again first (each guild swept once, as a
        drain task redelivered sweeps it, for what the dead drain had taken on inline)."""
        held = await self.redis.lrange(self.held, 0, -1)
        if held:
            logger.warning("the drain lane: %d drain(s) held by this slot's previous process start again", len(held))
        swept: set[bytes] = set()
        for item in reversed(held):  # oldest first
            guild = item.split(b",", 1)[0]
            self._start(item, redelivered=guild not in swept)
            swept.add(guild)
            await self._slots.acquire()  # (the slot held on entry went to this drain: the read needs another)

    def _start(self, item: bytes, *, redelivered: bool = False) -> None:
        task = asyncio.ensure_future(self._drain(item, redelivered))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self, item: bytes, redelivered: bool) -> None:
        again = False
        try:
            guild_id, agent_id = json.loads(item)
            try:
                outcome = await self.drain_task(guild_id, agent_id, redelivered)
            except Exception:
                # Redis away longer than a drain waits for it, or a fault of the drain's own: the queue takes
                # this agent over.
                logger.exception("draining agent %s from the lane failed; the queue takes it over", agent_id,
                                 extra={"guild_id": guild_id})
                enqueue(guild_id, agent_id, countdown=1)
            else:
                if outcome.retry_in is not None:
                    enqueue(guild_id, agent_id, countdown=outcome.retry_in)
                again = outcome.more and outcome.retry_in is None
        except (ValueError, TypeError):
            logger.error("an item of the drain lane is not [guild id, agent id]: %r", item[:200])
        finally:
            try:
                await self._done(item, again)
            finally:
                self._slots.release()

    async def _done(self, item: bytes, again: bool) -> None:
        """The item leaves the held list; with `again` (the time slice ran out) it goes back to the lane in
        the same step, so it is never in neither."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                if again:
                    pipe.lpush(self.lane, item)
                pipe.lrem(self.held, 1, item)
                await pipe.execute()
        except (RedisError, OSError) as exc:  # still held: this slot's next process drains it again
            logger.warning("a drained item stays held in the lane: %s", exc)

    async def stop(self, grace: float) -> None:
        """The process is going away: take nothing more, let the drains under way end (`grace` seconds at most),
        and put what is still held back on the lane, next in line, for the other processes."""
        if self._reading is not None:
            self._reading.cancel()
        if self._drains:
            await asyncio.wait(self._drains, timeout=grace)
        returned = 0
        while await self.redis.lmove(self.held, self.lane, "LEFT", "RIGHT") is not None:
            returned += 1
        if returned:
            logger.warning("the drain lane: %d drain(s) this process had not finished go back on the lane", returned)


_listener: LaneListener | None = None  # this process's (lane.listen)


def listen(node: str, slot: int) -> None:
    """Start this process's listener on the runtime loop (a worker process that runs drains: a pool process, or
    a solo or threads worker itself). `node` and `slot` name the process's place, which its replacement takes."""
    import redis.asyncio as aioredis
    from django.conf import settings
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from guilds.engines.celery import engine
    from guilds.engines.celery.wire import task_queue
    from guilds.runtime import loop as runtime_loop

    drainer = engine().drainer

    async def listening() -> None:
        global _listener
        # socket_timeout above the blocked read's wait, or every idle read would end in a timeout error; no
        # retries: a move sent again after its reply was lost would hold an item nobody drains.
        client = aioredis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=WAIT_SECONDS + 10,
                                         socket_connect_timeout=5, health_check_interval=30,
                                         retry=Retry(NoBackoff(), 0))
        _listener = LaneListener(client, task_queue(), node, slot,
                                 lambda guild_id, agent_id, redelivered: drainer.drain_task_waiting_for_redis(
                                     guild_id, agent_id, redelivered=redelivered))
        await _listener.run()

    def ended(future) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("the drain lane's listener stopped: drains of this process come by the queue only",
                         exc_info=future.exception())

    runtime_loop.submit(listening()).add_done_callback(ended)


def stop_listening(grace: float = STOP_GRACE_SECONDS) -> None:
    """From the process's shutdown (its main thread): see LaneListener.stop."""
    from guilds.runtime import loop as runtime_loop

    if _listener is None:
        return
    try:
        runtime_loop.run(_listener.stop(grace), timeout=grace + 5)
    except Exception:  # what stays held is drained again by this slot's next process, or swept
        logger.exception("the drain lane's listener did not stop cleanly")
