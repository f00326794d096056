"""Redis backend: persistent, shared across processes and machines.

Layout (prefix `gs:` by default, configurable so tests can isolate themselves)::

    {prefix}s:{ns}:{topic}       Redis Stream, one entry per stored message (field `m` = JSON),
                                 MAXLEN max_history, entries older than message_ttl trimmed
                                 on each add, key expiry refreshed to message_ttl on each add
    {prefix}msg:{ns}:{id}        hash: `json` = the message, `e:{ns}:{topic}` = its stream entry id
                                 per topic (for by-id lookups and position-based since queries)
    {prefix}c:{db}:{ns}:{topic}  pub/sub channel: "<stream entry id> <JSON>" per stored message,
                                 "~ <JSON>" per ephemeral one
    {prefix}d:{ns}:...           durable delivery's keys (messaging.delivery)

Storing is one Lua script per message (writer.py); subscriptions share one pub/sub connection
(subscriber.py). Pub/sub channels are not scoped by database number, hence the db in the channel name.
The command connections come from a blocking pool (`max_connections`), so bursts wait for a connection
instead of failing.

Retention: a topic keeps at most `max_history` entries; entries are trimmed once older than
`message_ttl` when the topic is written to, and an idle topic's key expires `message_ttl` after its
last write (so, unless pushed out by `max_history`, an entry lives at least `message_ttl` and, in an
idle topic, at most about twice that). The timestamp fallback of since-queries scans from
`CLOCK_SKEW_MS` before the id's time, because stream entry ids carry the Redis server's clock.
Redis Cluster is not supported (multi-key script).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisError

from messaging.backends.base import MessageHandler, MessagingBackend, site_bounded, topic_copies
from messaging.backends.redis.connection import NETWORK_ERRORS, LeanBlockingPool, connection_options
from messaging.backends.redis.subscriber import EPHEMERAL, Subscriber, entry_id
from messaging.backends.redis.writer import StoreWriter, store_script
from messaging.errors import BackendUnavailable, InvalidBackendConfig, InvalidMessage, PayloadTooLarge
from messaging.ids import id_timestamp_ms
from messaging.message import Message
from messaging.topics import history_limit, namespaced, split_namespaced

if TYPE_CHECKING:
    from messaging.delivery import StoreExtension

logger = logging.getLogger(__name__)

# The timestamp fallback of since-queries scans stream entries from this long before the
# id's time: stream entry ids use the Redis server's clock, message ids the sender's.
CLOCK_SKEW_MS = 60_000


class RedisMessagingBackend(MessagingBackend):
    def __init__(
        self,
        *,
        url: str | None = None,
        redis_client: dict[str, Any] | None = None,
        message_ttl: float | None = None,
        max_history: int | None = None,
        key_prefix: str = "gs:",
        connect_timeout: float = 2.0,
        command_timeout: float = 10.0,
        reconnect_delay: float = 0.05,
        max_connections: int = 50,
    ):
        options, self.host, self.port = connection_options(url, redis_client)
        self.db: int = options["db"]
        self.max_history, ttl = site_bounded(max_history, message_ttl)
        self.message_ttl_ms = max(1, int(ttl * 1000))
        self.key_prefix = key_prefix
        # A blocking pool: a burst of concurrent publishes waits for a free connection
        # instead of failing with "Too many connections" (redis-py's default pool).
        use_ssl = options.pop("ssl")
        pool = LeanBlockingPool(
            max_connections=max_connections,
            timeout=command_timeout,
            connection_class=SSLConnection if use_ssl else Connection,
            protocol=2,
            socket_connect_timeout=connect_timeout,
            socket_timeout=command_timeout,
            health_check_interval=30,  # re-check pooled connections idle this long before use
            retry=Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.25), 2),
            **options,
        )
        # The command connection: shared with the components that keep their own keys in this Redis
        # (durable delivery's inboxes), which is why it is public.
        self.client = aioredis.Redis.from_pool(pool)
        # The subscriber's socket idles between messages: no read timeout (redis-py's 5 s
        # default would drop it), TCP keepalive instead, and no hidden retries: the reader
        # task reconnects itself so it knows to catch up.
        pubsub_client = aioredis.Redis(
            **options,
            ssl=use_ssl,
            protocol=2,
            socket_connect_timeout=connect_timeout,
            socket_timeout=None,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=self.subscriber_client_name,
        )
        self.writer = StoreWriter(self.client, self._unavailable)
        self.subscriber = Subscriber(
            client=self.client, pubsub_client=pubsub_client, stream_key=self.stream_key, channel=self.channel,
            where=f"{self.host}:{self.port}", label=key_prefix, reconnect_delay=reconnect_delay,
            subscribe_timeout=connect_timeout + command_timeout, unavailable=self._unavailable,
        )
        self._closing_timeout = connect_timeout + command_timeout

    # --- names -----------------------------------------------------------------------

    def stream_key(self, topic: str) -> str:
        return f"{self.key_prefix}s:{topic}"

    def message_key(self, namespace: str, message_id: int) -> str:
        return f"{self.key_prefix}msg:{namespace}:{message_id}"

    def channel(self, topic: str) -> bytes:
        return f"{self.key_prefix}c:{self.db}:{topic}".encode()

    @property
    def subscriber_client_name(self) -> str:
        return f"guildsite-sub:{self.key_prefix}:{os.getpid()}"

    @property
    def reconnects(self) -> int:
        return self.subscriber.reconnects

    @property
    def caught_up(self) -> int:
        return self.subscriber.caught_up

    def same_database(self, url: str) -> bool:
        """Whether `url` names the Redis database this backend writes to (a Celery broker, say)."""
        try:
            other, host, port = connection_options(url, None)
        except InvalidBackendConfig:
            return False
        local = {"localhost", "127.0.0.1", "::1"}
        same_host = host == self.host or (host in local and self.host in local)
        return same_host and port == self.port and other["db"] == self.db

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(f"Redis at {self.host}:{self.port} is unavailable: {exc}")

    # --- writing ---------------------------------------------------------------------

    async def store_message(self, namespace: str, topics: list[str], message: Message,
                            max_bytes: int | None = None, extension: StoreExtension | None = None) -> list[str]:
        """Store and notify; returns what the extension asks the caller to wake (agent ids)."""
        if not topics:
            return []
        extension_args = extension.args if extension is not None else []
        args: list[Any] = [len(extension_args), *extension_args, self.message_ttl_ms, len(topics)]
        copies = topic_copies(namespace, topics, message, max_bytes)
        for copy_topic, copy in extension.copies if extension is not None else ():
            try:
                copies += topic_copies(namespace, [namespaced(namespace, copy_topic)], copy, max_bytes)
            except PayloadTooLarge:  # not stored for the subscriber: it gets the message itself
                copies.append((namespaced(namespace, copy_topic), copy_topic, b""))
        for topic, logical, data in copies:
            args += [f"e:{topic}", self.channel(topic), data, logical, history_limit(logical, self.max_history)]
        keys = [self.message_key(namespace, message.id)] + [self.stream_key(topic) for topic, _, _ in copies]
        source = store_script(extension.lua if extension is not None else None)
        stored, *woken = await self.writer.store(source, keys, args, f"message {message.id} for {topics}")
        if stored != len(topics):
            logger.debug("message %s stored in %s of %d topics (the others had it already) namespace=%s",
                         message.id, stored, len(topics), namespace)
        return [agent.decode() if isinstance(agent, bytes) else agent for agent in woken]

    async def broadcast(self, namespace: str, topics: list[str], message: Message, max_bytes: int | None = None) -> None:
        copies = list(topic_copies(namespace, topics, message, max_bytes))
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for topic, _, data in copies:
                    pipe.publish(self.channel(topic), EPHEMERAL + b" " + data)
                await pipe.execute()
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc

    # --- reading ---------------------------------------------------------------------

    @staticmethod
    def _parse_entries(entries: list[Any], topic: str) -> list[Message]:
        messages = []
        for eid, fields in entries:
            try:
                messages.append(Message.from_json(fields[b"m"]))
            except (InvalidMessage, KeyError) as exc:
                logger.error("unreadable stream entry %s in topic %s: %s", eid, topic, exc)
        return messages

    async def get_messages_for_topic(self, topic: str, limit: int | None = None) -> list[Message]:
        if limit is not None and limit <= 0:
            return []
        try:
            if limit is None:
                entries = await self.client.xrange(self.stream_key(topic))
            else:
                entries = list(reversed(await self.client.xrevrange(self.stream_key(topic), count=limit)))
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        return self._parse_entries(entries, topic)

    async def get_messages_for_topic_since(
        self, topic: str, msg_id_since: int, limit: int | None = None
    ) -> list[Message]:
        if limit is not None and limit <= 0:
            return []
        namespace, _ = split_namespaced(topic)
        key = self.stream_key(topic)
        try:
            position = await self.client.hget(self.message_key(namespace, msg_id_since), f"e:{topic}")
            if position is not None:
                entries = await self.client.xrange(key, min=f"({position.decode()}", count=limit)
                return self._parse_entries(entries, topic)
            # Not (or no longer) in this topic: fall back to message time.
            after = id_timestamp_ms(msg_id_since)
            entries = await self.client.xrange(key, min=str(max(0, after - CLOCK_SKEW_MS)))
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        messages = [m for m in self._parse_entries(entries, topic) if (m.timestamp or 0) > after]
        return messages if limit is None else messages[:limit]

    async def get_messages_by_id(self, namespace: str, ids: list[int]) -> list[Message]:
        if not ids:
            return []
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for message_id in ids:
                    pipe.hget(self.message_key(namespace, message_id), "json")
                found = await pipe.execute()
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        messages = []
        for message_id, data in zip(ids, found, strict=True):
            if data is None:
                continue
            try:
                messages.append(Message.from_json(data))
            except InvalidMessage as exc:
                logger.error("unreadable message %s in namespace %s: %s", message_id, namespace, exc)
        return messages

    # --- subscriptions ---------------------------------------------------------------

    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        await self.subscriber.subscribe(topic, handler)

    async def unsubscribe(self, topic: str) -> None:
        await self.subscriber.unsubscribe(topic)

    def subscribed_topics(self) -> frozenset[str]:
        return self.subscriber.topics()

    # --- lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise BackendUnavailable unless Redis answers."""
        try:
            await self.client.ping()
        except NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def cleanup(self) -> None:
        await self.subscriber.close()
        await self.writer.drained(self._closing_timeout)  # queued writes finish (or fail) before closing
        for client in (self.client, self.subscriber.pubsub_client):
            try:
                await client.aclose()
            except (RedisError, OSError) as exc:
                logger.debug("closing Redis client for %s:%s: %s", self.host, self.port, exc)


__all__ = ["CLOCK_SKEW_MS", "RedisMessagingBackend", "entry_id"]
