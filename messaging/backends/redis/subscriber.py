"""Subscriptions: one pub/sub connection per backend, read by one task that calls the handlers.

The reader remembers the last stream entry id it delivered per topic; whenever a channel
(re)subscription is confirmed (the first subscribe, or after the connection was lost and
re-established) it reads the stream from there and delivers what it missed, and it drops
notifications it has already delivered. So a subscriber briefly away loses nothing and receives
nothing twice. Ephemeral messages (published, never stored) come as "~ <JSON>": delivered as they
come, and nothing to catch up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from messaging.backends.base import MessageHandler
from messaging.backends.redis.connection import NETWORK_ERRORS
from messaging.errors import BackendUnavailable, InvalidMessage
from messaging.message import Message
from messaging.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

EntryId = tuple[int, int]
EPHEMERAL = b"~"
_CATCH_UP_BATCH = 500


def entry_id(raw: bytes | str) -> EntryId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_entry_id(eid: EntryId) -> str:
    return f"{eid[0]}-{eid[1]}"


class Subscriber:
    def __init__(self, *, client: Any, pubsub_client: Any, stream_key: Callable[[str], str],
                 channel: Callable[[str], bytes], where: str, label: str, reconnect_delay: float,
                 subscribe_timeout: float, unavailable: Callable[[BaseException], BackendUnavailable]) -> None:
        self.client = client  # commands (stream reads)
        self.pubsub_client = pubsub_client  # no read timeout: it idles between messages
        self.stream_key = stream_key
        self.channel = channel
        self.where = where
        self.label = label
        self.reconnect_delay = reconnect_delay
        self.subscribe_timeout = subscribe_timeout
        self.unavailable = unavailable
        self._handlers: dict[str, MessageHandler] = {}
        self._last_seen: dict[str, EntryId] = {}
        self._channel_topic: dict[bytes, str] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._connected = False
        self._reader: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.reconnects = 0  # times the pub/sub connection was re-established
        self.caught_up = 0  # messages delivered from the stream after a (re)subscription

    def topics(self) -> frozenset[str]:
        return frozenset(self._handlers)

    @property
    def connected(self) -> bool:
        """Whether the pub/sub connection is up now (it is re-established by itself when lost)."""
        return self._connected

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a RedisMessagingBackend is bound to the event loop that first subscribed")
        if self._closed:
            raise RuntimeError("backend is closed")
        if topic in self._handlers:
            self._handlers[topic] = handler
            pending = self._pending.get(topic)
            if pending is not None:
                await asyncio.shield(pending)
            return
        try:
            # Baseline: deliver what is stored from now on (including anything stored
            # before the channel subscription is confirmed: the catch-up reads it).
            last = await self.client.xrevrange(self.stream_key(topic), count=1)
        except NETWORK_ERRORS as exc:
            raise self.unavailable(exc) from exc
        channel = self.channel(topic)
        self._handlers[topic] = handler
        self._last_seen[topic] = entry_id(last[0][0]) if last else (0, 0)
        self._channel_topic[channel] = topic
        pending = self._pending[topic] = loop.create_future()
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read(), name=f"redis-subscriber:{self.label}")
        elif self._connected:
            try:
                await self._pubsub.subscribe(channel)
            except NETWORK_ERRORS as exc:
                logger.info("subscribe to %s deferred to reconnection: %s", topic, exc)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that lands as `pending` resolves.
            async with asyncio.timeout(self.subscribe_timeout):
                await asyncio.shield(pending)
        except TimeoutError:
            await self.unsubscribe(topic)
            raise BackendUnavailable(f"Redis at {self.where} did not confirm the subscription to {topic}") from None

    async def unsubscribe(self, topic: str) -> None:
        if self._handlers.pop(topic, None) is None:
            return
        channel = self.channel(topic)
        self._last_seen.pop(topic, None)
        self._channel_topic.pop(channel, None)
        pending = self._pending.pop(topic, None)
        if pending is not None and not pending.done():
            pending.cancel()
        if self._connected and self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(channel)
            except NETWORK_ERRORS as exc:
                logger.info("unsubscribe from %s not sent (%s); its notifications are ignored", topic, exc)

    async def _open_pubsub(self) -> Any:
        pubsub = self.pubsub_client.pubsub()
        sent: set[bytes] = set()
        try:
            await pubsub.connect()
            while True:  # channels may be added while we subscribe: loop until none is left
                todo = [c for c in self._channel_topic if c not in sent]
                if not todo:
                    break
                await pubsub.subscribe(*todo)
                sent.update(todo)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        self._pubsub = pubsub
        self._connected = True  # no await since the last check: subscribe() sends from here on
        return pubsub

    async def _read(self) -> None:
        delay = self.reconnect_delay
        opened_before = False
        while not self._closed:
            pubsub = None
            try:
                pubsub = await self._open_pubsub()
                if opened_before:
                    self.reconnects += 1
                    logger.info("pub/sub connection to Redis %s re-established", self.where)
                opened_before = True
                delay = self.reconnect_delay
                while True:
                    item = await pubsub.get_message(timeout=None)
                    if item is not None:
                        await self._on_pubsub(item)
            except asyncio.CancelledError:
                raise
            except (*NETWORK_ERRORS, BackendUnavailable) as exc:
                logger.warning("pub/sub connection to Redis %s lost (%s); reconnecting in %.2fs", self.where, exc, delay)
            except Exception:
                logger.exception("pub/sub reader for Redis %s failed; restarting", self.where)
            finally:
                self._connected = False
                self._pubsub = None
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _on_pubsub(self, item: dict[str, Any]) -> None:
        kind = item["type"]
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "message":
            topic = self._channel_topic.get(item["channel"])
            if topic is None:
                return  # unsubscribed meanwhile
            data: bytes = item["data"]
            eid, _, body = data.partition(b" ")
            if eid == EPHEMERAL:
                self._hand(topic, body, "ephemeral")
            else:
                self._deliver(topic, entry_id(eid), body)
        elif kind == "subscribe":
            topic = self._channel_topic.get(item["channel"])
            if topic is None:
                return
            await self._catch_up(topic)
            pending = self._pending.pop(topic, None)
            if pending is not None and not pending.done():
                pending.set_result(None)

    async def _catch_up(self, topic: str) -> None:
        """Deliver what the topic's stream holds after the last entry delivered."""
        key = self.stream_key(topic)
        while topic in self._handlers:
            start = self._last_seen[topic]
            try:
                entries = await self.client.xrange(key, min=f"({format_entry_id(start)}", count=_CATCH_UP_BATCH)
            except NETWORK_ERRORS as exc:
                raise self.unavailable(exc) from exc
            for eid, fields in entries:
                if self._deliver(topic, entry_id(eid), fields.get(b"m", b"")):
                    self.caught_up += 1
            if len(entries) < _CATCH_UP_BATCH:
                return

    def _deliver(self, topic: str, eid: EntryId, data: bytes) -> bool:
        last = self._last_seen.get(topic)
        if topic not in self._handlers or last is None or eid <= last:
            return False  # unsubscribed, or already delivered
        self._last_seen[topic] = eid
        return self._hand(topic, data, format_entry_id(eid))

    def _hand(self, topic: str, data: bytes, where: str) -> bool:
        handler = self._handlers.get(topic)
        if handler is None:
            return False
        try:
            message = Message.from_json(data)
        except InvalidMessage as exc:
            logger.error("unreadable message at %s in topic %s: %s", where, topic, exc)
            return False
        try:
            handler(message)
        except Exception:
            logger.exception("handler for topic %s failed on message %s", topic, message.id)
        return True

    async def close(self) -> None:
        self._closed = True
        self._handlers.clear()
        self._channel_topic.clear()
        self._last_seen.clear()
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                await cancel_and_wait(reader)
