"""Bus clients: how a receiver (agent, socket, test) takes messages from the bus.

The bus calls `notify_new_message` in its event loop, once per message, with a Message
object that belongs to this client alone. It must not block.

* `MessageTrackingClient` (the default for agents): handles waiting messages one at a time
  by (priority, id), never the same id twice, and remembers the last one it handled.
* `SimpleClient`: calls a plain function at once (sockets forwarding frames, tests).
* Wrappers: `FilteringClient`, `ThrottlingClient`, `RetryingClient` (see each).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable

from messaging.message import Message
from messaging.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

AsyncHandler = Callable[[Message], Awaitable[None]]


class RecentIds:
    """The ids added in the last `horizon` seconds (to the second), at most the last `capacity`.

    Duplicates arrive close together (the copies of one publish, a replay overlapping live
    delivery), so an id need not be remembered for long; without a horizon, a long-lived
    receiver of a steady trickle (heartbeat ticks) would fill to `capacity` and stay there.
    Times are kept per second, not per id: a mark says how many ids had been added when.
    """

    def __init__(self, capacity: int, horizon: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.capacity = capacity
        self.horizon = horizon
        self._clock = clock
        self._order: deque[int] = deque()  # oldest first
        self._ids: set[int] = set()
        self._marks: deque[tuple[float, int]] = deque()  # (time, ids added before it)
        self._added = 0
        self._forgotten = 0

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids

    def add(self, message_id: int) -> bool:
        """Remember the id; False if it was already remembered."""
        if message_id in self._ids:
            return False
        if self.horizon is not None:
            now, marks = self._clock(), self._marks
            if not marks or now - marks[-1][0] >= 1.0:
                marks.append((now, self._added))
            while marks[0][0] <= now - self.horizon:  # the newest mark is never that old
                self._forget(marks.popleft()[1])
        if len(self._order) >= self.capacity:
            self._forget(self._forgotten + 1)
        self._ids.add(message_id)
        self._order.append(message_id)
        self._added += 1
        return True

    def discard(self, message_id: int) -> None:
        """Forget one id now (it was remembered for something that did not happen)."""
        self._ids.discard(message_id)

    def _forget(self, until: int) -> None:
        """Forget the ids added before the `until`-th."""
        while self._forgotten < until and self._order:
            self._ids.discard(self._order.popleft())
            self._forgotten += 1

    def __len__(self) -> int:
        return len(self._ids)


class Client(ABC):
    """A receiver registered with a MessagingInterface."""

    def __init__(self, id: str, name: str):
        self.id = id
        self.name = name

    @abstractmethod
    def notify_new_message(self, message: Message) -> None:
        """Take one message (called in the bus's event loop; must not block)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most clients have nothing to stop
        """Stop any background work (default: none)."""

    async def idle(self) -> None:  # noqa: B027 - optional hook
        """Return once nothing is waiting or being handled (default: at once)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, name={self.name!r})"


class SimpleClient(Client):
    """Calls `handler(message)` (a plain function) as soon as a message arrives."""

    def __init__(self, id: str, name: str, handler: Callable[[Message], None]):
        super().__init__(id, name)
        self.handler = handler

    def notify_new_message(self, message: Message) -> None:
        self.handler(message)


class MessageTrackingClient(Client):
    """Handles messages one at a time, by priority then id, never the same id twice.

    Waiting messages sit in a heap ordered by `(priority, id)`; a single drain task runs
    `await handler(message)` for each. A handler that raises is logged and the client goes
    on. Ids already seen (in the last `dedupe_horizon` seconds, at most the last
    `dedupe_capacity`) are dropped, so at-least-once delivery upstream becomes
    effectively-once here. A message arriving late with an id
    below `last_processed_id` is still handled.
    """

    def __init__(self, id: str, name: str, handler: AsyncHandler, *, dedupe_capacity: int = 10_000,
                 dedupe_horizon: float = 600.0):
        super().__init__(id, name)
        self.handler = handler
        self.last_processed_id: int | None = None  # id of the message handled most recently
        self.handled = 0
        self._heap: list[tuple[int, int, Message]] = []
        self._seen = RecentIds(dedupe_capacity, dedupe_horizon)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def notify_new_message(self, message: Message) -> None:
        if self._closed:
            logger.warning("client %s is closed; message %s dropped", self.id, message.id)
            return
        if not self._seen.add(message.id):
            logger.debug("client %s already has message %s; duplicate dropped", self.id, message.id)
            return
        heapq.heappush(self._heap, (message.priority or 0, message.id, message))
        self._idle.clear()
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"client-drain:{self.id}")

    @property
    def waiting(self) -> int:
        return len(self._heap)

    @property
    def busy(self) -> bool:
        """Whether a message waits or is being handled."""
        return not self._idle.is_set()

    async def _drain(self) -> None:
        while True:
            while self._heap:
                _, _, message = heapq.heappop(self._heap)
                try:
                    await self.handler(message)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception(
                        "client %s failed to handle message %s (topic %s)", self.id, message.id,
                        message.topic_published_to,
                    )
                self.last_processed_id = message.id
                self.handled += 1
                if asyncio.current_task().cancelling():
                    # Asked to stop while handling, and the handler returned anyway: something below lost the
                    # cancel (seen: a Redis read during a proxy's catch-up on Python 3.11). Stop all the same,
                    # or close() and the guild's shutdown wait for ever.
                    raise asyncio.CancelledError
            self._wakeup.clear()
            self._idle.set()
            await self._wakeup.wait()

    async def idle(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self._idle.set()


class FilteringClient(Client):
    """Passes on only the messages `predicate` accepts.

    Use: a receiver that shares a topic but wants a subset (a user socket that shows only
    some formats, an agent that acts only when tagged) without a second topic.
    """

    def __init__(self, inner: Client, predicate: Callable[[Message], bool]):
        super().__init__(inner.id, inner.name)
        self.inner = inner
        self.predicate = predicate

    def notify_new_message(self, message: Message) -> None:
        if self.predicate(message):
            self.inner.notify_new_message(message)

    async def close(self) -> None:
        await self.inner.close()

    async def idle(self) -> None:
        await self.inner.idle()


class ThrottlingClient(Client):
    """Passes messages on in arrival order at most `per_second` a second (delays, never drops).

    Use: a receiver that must not be flooded: an agent calling a rate-limited API, or a
    browser socket on a slow link.
    """

    def __init__(self, inner: Client, per_second: float):
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        super().__init__(inner.id, inner.name)
        self.inner = inner
        self.interval = 1.0 / per_second
        self._queue: deque[Message] = deque()
        self._next_at = 0.0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def notify_new_message(self, message: Message) -> None:
        self._queue.append(message)
        self._idle.clear()
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._pace(), name=f"client-throttle:{self.id}")

    async def _pace(self) -> None:
        while True:
            while self._queue:
                delay = self._next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._next_at = max(self._next_at, time.monotonic()) + self.interval
                message = self._queue.popleft()
                try:
                    self.inner.notify_new_message(message)
                except Exception:
                    logger.exception("client %s failed to take message %s", self.id, message.id)
            self._wakeup.clear()
            self._idle.set()
            await self._wakeup.wait()

    async def idle(self) -> None:
        await self._idle.wait()
        await self.inner.idle()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self._idle.set()
        await self.inner.close()


class RetryingClient(Client):
    """Re-invokes the async handler of a MessageTrackingClient that raised.

    Up to `attempts` calls in all, waiting `backoff_seconds`, then twice that, and so on,
    between them; the last failure is logged by the tracking client as usual. Use:
    handlers that talk to something flaky (an LLM API, a database failing over), where a
    retry a moment later usually succeeds. Messages stay strictly one at a time.
    """

    def __init__(self, inner: MessageTrackingClient, attempts: int = 3, backoff_seconds: float = 0.1):
        if not isinstance(inner, MessageTrackingClient):
            raise TypeError("RetryingClient wraps a MessageTrackingClient (it retries its async handler)")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        super().__init__(inner.id, inner.name)
        self.inner = inner
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.retries = 0
        self._handler = inner.handler
        inner.handler = self._handle

    async def _handle(self, message: Message) -> None:
        delay = self.backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                await self._handler(message)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self.attempts:
                    raise
                self.retries += 1
                logger.warning(
                    "client %s: message %s failed (attempt %d of %d: %s); retrying in %.2fs",
                    self.id, message.id, attempt, self.attempts, exc, delay,
                )
                await asyncio.sleep(delay)
                delay *= 2

    def notify_new_message(self, message: Message) -> None:
        self.inner.notify_new_message(message)

    @property
    def last_processed_id(self) -> int | None:
        return self.inner.last_processed_id

    async def idle(self) -> None:
        await self.inner.idle()

    async def close(self) -> None:
        await self.inner.close()
