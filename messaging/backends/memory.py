"""In-memory backend: the embedded default (one process, nothing to install).

All instances in a process share one store, so two buses configured for memory see the
same data. Each topic keeps a bounded history (`max_history`) whose entries expire after
`message_ttl` seconds. A message is stored as JSON bytes once per topic and parsed again
for every delivery and read, so no two receivers ever share a mutable `Message`.

Fan-out is synchronous: `store_message` calls the topic's handlers directly when they
belong to the running event loop (handlers are non-blocking by contract), or hands them
to their own loop with `call_soon_threadsafe` otherwise.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from messaging.backends.base import MessageHandler, MessagingBackend, site_bounded, topic_copies
from messaging.errors import MessagingError
from messaging.ids import id_timestamp_ms
from messaging.message import Message
from messaging.topics import history_limit, strip_namespace

if TYPE_CHECKING:
    from messaging.delivery import StoreExtension

logger = logging.getLogger(__name__)

_SWEEP_INTERVAL = 1.0  # seconds between sweeps of expired entries across all topics


@dataclass(slots=True)
class _Record:
    json: bytes
    expires_at: float
    refs: int = 0  # topic entries holding this message: the record goes with the last of them


@dataclass(slots=True)
class _Entry:
    seq: int
    msg_id: int
    timestamp: int
    json: bytes
    expires_at: float
    record: _Record | None = None
    record_key: tuple[str, int] | None = None


_DROPPED = _Entry(seq=0, msg_id=0, timestamp=0, json=b"", expires_at=0.0)


@dataclass(slots=True)
class _TopicLog:
    entries: list[_Entry] = field(default_factory=list)
    start: int = 0  # entries[:start] are dropped (compacted lazily)
    positions: dict[int, int] = field(default_factory=dict)  # message id -> seq

    def drop_front(self) -> None:
        entry = self.entries[self.start]
        self.positions.pop(entry.msg_id, None)
        if entry.record is not None:
            entry.record.refs -= 1
            if entry.record.refs <= 0 and _STORE.messages.get(entry.record_key) is entry.record:
                del _STORE.messages[entry.record_key]  # out of every topic's history: gone by id too
        self.entries[self.start] = _DROPPED  # its bytes go now, its slot when the list is compacted
        self.start += 1
        if self.start > 1024 and self.start * 2 > len(self.entries):
            del self.entries[: self.start]
            self.start = 0

    def trim(self, max_history: int, now: float) -> None:
        while self.start < len(self.entries) and (
            len(self.entries) - self.start > max_history or self.entries[self.start].expires_at <= now
        ):
            self.drop_front()

    def live(self, now: float, lo: int | None = None) -> list[_Entry]:
        return [e for e in self.entries[self.start if lo is None else lo :] if e.expires_at > now]

    def __len__(self) -> int:
        return len(self.entries) - self.start


@dataclass(slots=True)
class _Subscription:
    loop: asyncio.AbstractEventLoop
    handler: MessageHandler


class _MemoryStore:
    """The process-wide store shared by every InMemoryMessagingBackend."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = itertools.count(1)
        self.topics: dict[str, _TopicLog] = {}
        self.messages: dict[tuple[str, int], _Record] = {}
        self.subscribers: dict[str, dict[int, _Subscription]] = {}
        self.last_sweep = time.monotonic()

    def sweep(self, now: float) -> None:
        """Drop expired entries everywhere (called under the lock, at most once a second)."""
        self.last_sweep = now
        for name in list(self.topics):
            log = self.topics[name]
            while log.start < len(log.entries) and log.entries[log.start].expires_at <= now:
                log.drop_front()
            if not len(log) and name not in self.subscribers:
                del self.topics[name]
        # Records are inserted in store order, so the expired ones are (nearly) a prefix.
        for key in list(self.messages):
            if self.messages[key].expires_at > now:
                break
            del self.messages[key]


_STORE = _MemoryStore()


def reset_memory_store() -> None:
    """Forget every stored message (tests); subscriptions are kept."""
    with _STORE.lock:
        _STORE.topics.clear()
        _STORE.messages.clear()


class InMemoryMessagingBackend(MessagingBackend):
    hands_out_on_store = True  # the loop's own subscribers are called from store_message itself

    def __init__(self, max_history: int | None = None, message_ttl: float | None = None):
        self.max_history, self.message_ttl = site_bounded(max_history, message_ttl)
        self._topics: set[str] = set()
        self._key = id(self)

    # --- writing ---------------------------------------------------------------------

    async def store_message(self, namespace: str, topics: list[str], message: Message,
                            max_bytes: int | None = None, extension: StoreExtension | None = None) -> list[str]:
        if extension is not None:
            raise MessagingError("durable delivery (agents in Celery workers) needs the Redis messaging backend")
        # Serialise every copy before touching the store: nothing can fail half-way.
        copies = [(topic, data) for topic, _, data in topic_copies(namespace, topics, message, max_bytes)]
        now = time.monotonic()
        expires_at = now + self.message_ttl
        stored: list[tuple[str, bytes]] = []
        store = _STORE
        with store.lock:
            if now - store.last_sweep > _SWEEP_INTERVAL:
                store.sweep(now)
            key = (namespace, message.id)
            record = store.messages.get(key)
            if record is None or record.expires_at <= now:
                record = None
            for topic, data in copies:
                log = store.topics.get(topic)
                if log is None:
                    log = store.topics[topic] = _TopicLog()
                if message.id in log.positions:
                    logger.debug("message %s already in topic %s: not stored again", message.id, topic)
                    continue
                if record is None:
                    store.messages.pop(key, None)  # re-insert at the end: keeps expiry order
                    record = store.messages[key] = _Record(data, expires_at)
                record.refs += 1
                seq = next(store.seq)
                log.entries.append(_Entry(seq, message.id, message.timestamp or 0, data, expires_at, record, key))
                log.positions[message.id] = seq
                log.trim(history_limit(strip_namespace(namespace, topic), self.max_history), now)
                stored.append((topic, data))
            deliveries = [
                (topic, data, list(store.subscribers.get(topic, {}).values())) for topic, data in stored
            ]
        self._notify(deliveries)
        return []

    async def broadcast(self, namespace: str, topics: list[str], message: Message, max_bytes: int | None = None) -> None:
        copies = topic_copies(namespace, topics, message, max_bytes)
        with _STORE.lock:
            deliveries = [(topic, data, list(_STORE.subscribers.get(topic, {}).values())) for topic, _, data in copies]
        self._notify(deliveries)

    @staticmethod
    def _notify(deliveries: list[tuple[str, bytes, list[Any]]]) -> None:
        if not deliveries:
            return
        running = asyncio.get_running_loop()
        for topic, data, subscriptions in deliveries:
            for subscription in subscriptions:
                if subscription.loop is running:
                    _call_handler(subscription.handler, topic, data)
                elif subscription.loop.is_closed():
                    _drop_dead(topic, subscription)
                else:
                    subscription.loop.call_soon_threadsafe(_call_handler, subscription.handler, topic, data)

    # --- reading ---------------------------------------------------------------------

    async def get_messages_for_topic(self, topic: str, limit: int | None = None) -> list[Message]:
        now = time.monotonic()
        with _STORE.lock:
            log = _STORE.topics.get(topic)
            entries = log.live(now) if log is not None else []
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return [Message.from_json(e.json) for e in entries]

    async def get_messages_for_topic_since(
        self, topic: str, msg_id_since: int, limit: int | None = None
    ) -> list[Message]:
        now = time.monotonic()
        with _STORE.lock:
            log = _STORE.topics.get(topic)
            if log is None:
                return []
            seq = log.positions.get(msg_id_since)
            if seq is not None:
                lo = bisect.bisect_right(log.entries, seq, lo=log.start, key=attrgetter("seq"))
                entries = log.live(now, lo)
            else:
                after = id_timestamp_ms(msg_id_since)
                entries = [e for e in log.live(now) if e.timestamp > after]
        if limit is not None:
            entries = entries[:limit] if limit > 0 else []
        return [Message.from_json(e.json) for e in entries]

    async def get_messages_by_id(self, namespace: str, ids: list[int]) -> list[Message]:
        now = time.monotonic()
        with _STORE.lock:
            found = [_STORE.messages.get((namespace, i)) for i in ids]
        return [Message.from_json(r.json) for r in found if r is not None and r.expires_at > now]

    # --- subscriptions ---------------------------------------------------------------

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        loop = asyncio.get_running_loop()
        with _STORE.lock:
            _STORE.subscribers.setdefault(topic, {})[self._key] = _Subscription(loop, handler)
        self._topics.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        self._drop(topic)

    def _drop(self, topic: str) -> None:
        with _STORE.lock:
            subscribers = _STORE.subscribers.get(topic)
            if subscribers is not None:
                subscribers.pop(self._key, None)
                if not subscribers:
                    del _STORE.subscribers[topic]
        self._topics.discard(topic)

    def subscribed_topics(self) -> frozenset[str]:
        return frozenset(self._topics)

    async def cleanup(self) -> None:
        for topic in list(self._topics):
            self._drop(topic)


def _drop_dead(topic: str, dead: _Subscription) -> None:
    """Forget a subscription whose event loop is gone (its bus was never shut down)."""
    with _STORE.lock:
        subscribers = _STORE.subscribers.get(topic, {})
        for key, subscription in list(subscribers.items()):
            if subscription is dead:
                del subscribers[key]
        if not subscribers:
            _STORE.subscribers.pop(topic, None)
    logger.warning("dropped the subscription to %s: its event loop is closed (bus not shut down?)", topic)


def _call_handler(handler: MessageHandler, topic: str, data: bytes) -> None:
    try:
        message = Message.from_json(data)
        handler(message)
    except Exception:
        logger.exception("handler for topic %s failed", topic)
