"""Redis backend: persistent, shared across processes and machines.

Layout (prefix `gs:` by default, configurable so tests can isolate themselves)::

    {prefix}s:{ns}:{topic}       Redis Stream, one entry per stored message (field `m` = JSON),
                                 MAXLEN max_history, entries older than message_ttl trimmed
                                 on each add, key expiry refreshed to message_ttl on each add
    {prefix}msg:{ns}:{id}        hash: `json` = the message, `e:{ns}:{topic}` = its stream entry id
                                 per topic (for by-id lookups and position-based since queries)
    {prefix}c:{db}:{ns}:{topic}  pub/sub channel: "<stream entry id> <JSON>" per stored message

One Lua script writes all of it per message (atomic; it checks key types before writing,
so nothing is half-stored). Writes queued while one is in flight go together in the next
pipeline, so concurrent publishers share round trips. Pub/sub channels are not scoped by
database number, hence the db in the channel name. The command connections come from a
blocking pool (`max_connections`), so bursts wait for a connection instead of failing.

Subscribers share one pub/sub connection per backend instance, read by one task that calls
the handlers in the subscribing event loop. The task remembers the last stream entry id it
delivered per topic; whenever a channel (re)subscription is confirmed (first subscribe, or
after the connection was lost and re-established) it reads the stream from there with
XRANGE and delivers what it missed, and it drops notifications it has already delivered.
So a subscriber briefly away loses nothing and receives nothing twice.

Retention: a topic keeps at most `max_history` entries; entries are trimmed once older
than `message_ttl` when the topic is written to, and an idle topic's key expires
`message_ttl` after its last write (so, unless pushed out by `max_history`, an entry lives
at least `message_ttl` and, in an idle topic, at most about twice that). The timestamp
fallback of since-queries scans from `CLOCK_SKEW_MS` before the id's time, because stream
entry ids carry the Redis server's clock. Redis Cluster is not supported (multi-key script).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from messaging import durable
from messaging.backends.base import MessageHandler, MessagingBackend, topic_copies
from messaging.durable import WAKE_TTL_MS, inbox_score
from messaging.errors import BackendUnavailable, InvalidBackendConfig, InvalidMessage, MessagingError
from messaging.ids import id_timestamp_ms
from messaging.message import Message
from messaging.topics import history_limit, split_namespaced

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_CATCH_UP_BATCH = 500
# The timestamp fallback of since-queries scans stream entries from this long before the
# id's time: stream entry ids use the Redis server's clock, message ids the sender's.
CLOCK_SKEW_MS = 60_000

_PLAIN_ID = re.compile(r"^[\w.@+-]+$", re.ASCII)  # goes into a JSON template as it is
_REDIS_CLIENT_KEYS = {"host", "port", "ssl", "username", "password", "db"}

# KEYS[1] = message hash, KEYS[2..] = topic streams.
# ARGV = ttl_ms, max_history, durable key prefix, sender id, inbox score, message id, wake flag ttl_ms,
# task queue key, task template, id prefix of agents the caller wakes itself, then per topic:
# hash field, channel, JSON, logical topic, history limit.
# Besides storing, a new message goes into the inbox of every durable subscriber of its topic
# (the agents Celery workers run; see messaging.durable), in the same atomic step: an agent
# never misses a stored message. An agent with nothing due yet gets a drain task pushed on the
# queue here too when a template is given (so a crash cannot come between storing and
# enqueueing), as long as its id can go into the template as it is. Returns {stored, agents the
# caller must wake...}.
_STORE_SCRIPT = """
local ttl = tonumber(ARGV[1])
local dprefix = ARGV[3]
local sender = ARGV[4]
local score = ARGV[5]
local mid = ARGV[6]
local queue = ARGV[8]
local template = ARGV[9]
local caller_wakes = ARGV[10]
local n = (#ARGV - 10) / 5
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. kind)
end
for i = 1, n do
  kind = redis.call('TYPE', KEYS[i + 1])['ok']
  if kind ~= 'none' and kind ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i + 1] .. ' is a ' .. kind)
  end
end
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ttl
local stored = 0
local wake = {}
local function enqueued(agent)
  if queue == '' or not string.find(agent, '^[%w_.@+-]+$') then
    return false
  end
  if caller_wakes ~= '' and string.sub(agent, 1, #caller_wakes) == caller_wakes then
    return false
  end
  local values = {TASK_ID = mid .. '-' .. agent .. '-' .. now[1] .. now[2], AGENT = agent}
  redis.call('LPUSH', queue, (string.gsub(template, '@([%u_]+)@', values)))
  return true
end
for i = 1, n do
  local base = 10 + (i - 1) * 5
  local field = ARGV[base + 1]
  local channel = ARGV[base + 2]
  local json = ARGV[base + 3]
  local topic = ARGV[base + 4]
  local maxlen = ARGV[base + 5]
  if redis.call('HEXISTS', KEYS[1], field) == 0 then
    local eid = redis.call('XADD', KEYS[i + 1], 'MAXLEN', maxlen, '*', 'm', json)
    if cutoff > 0 then
      redis.call('XTRIM', KEYS[i + 1], 'MINID', cutoff)
    end
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
    redis.call('HSET', KEYS[1], field, eid)
    redis.call('PUBLISH', channel, eid .. ' ' .. json)
    stored = stored + 1
    local self_inbox = string.sub(topic, 1, 17) == 'agent_self_inbox:'
    for _, agent in ipairs(redis.call('SMEMBERS', dprefix .. 'subs:' .. topic)) do
      if (self_inbox and agent == sender) or ((not self_inbox) and agent ~= sender) then
        if redis.call('ZADD', dprefix .. 'inbox:' .. agent, 'NX', score, mid) == 1 then
          redis.call('HSET', dprefix .. 'box:' .. agent, mid, json)
          if redis.call('SET', dprefix .. 'wake:' .. agent, '1', 'NX', 'PX', ARGV[7]) and not enqueued(agent) then
            table.insert(wake, agent)
          end
        end
      end
    end
  end
end
if stored > 0 then
  redis.call('HSETNX', KEYS[1], 'json', ARGV[13])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
table.insert(wake, 1, stored)
return wake
"""

EntryId = tuple[int, int]


@dataclass(slots=True)
class _Write:
    keys: list[str]
    args: list[Any]
    done: asyncio.Future[list[Any]]
    label: str


def _entry_id(raw: bytes | str) -> EntryId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _format_entry_id(eid: EntryId) -> str:
    return f"{eid[0]}-{eid[1]}"


def _connection_options(url: str | None, redis_client: dict[str, Any] | None) -> tuple[dict[str, Any], str, int]:
    """Keyword arguments for redis.asyncio.Redis, plus host and port for error messages."""
    if url and redis_client:
        raise InvalidBackendConfig("give either 'url' or 'redis_client', not both")
    if redis_client is not None:
        if not isinstance(redis_client, dict):
            raise InvalidBackendConfig("'redis_client' must be an object with host, port, ...")
        ignored = sorted(set(redis_client) - _REDIS_CLIENT_KEYS)
        if ignored:
            logger.info("redis_client options ignored by guildsite: %s", ", ".join(ignored))
        options = {
            "host": str(redis_client.get("host") or "localhost"),
            "port": int(redis_client.get("port") or 6379),
            "db": int(redis_client.get("db") or 0),
            "username": redis_client.get("username"),
            "password": redis_client.get("password"),
            "ssl": bool(redis_client.get("ssl", False)),
        }
        return options, options["host"], options["port"]
    if not url:
        from django.conf import settings

        url = getattr(settings, "REDIS_URL", None) or "redis://localhost:6379/0"
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss"}:
        raise InvalidBackendConfig(f"Redis url must start with redis:// or rediss://, got {parsed.scheme or url!r}")
    path = parsed.path.lstrip("/")
    try:
        db = int(path) if path else 0
    except ValueError:
        raise InvalidBackendConfig(f"Redis url database must be a number, got {path!r}") from None
    options = {
        "host": parsed.hostname or "localhost",
        "port": parsed.port or 6379,
        "db": db,
        "username": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        "ssl": parsed.scheme == "rediss",
    }
    return options, options["host"], options["port"]


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
        from django.conf import settings

        options, self.host, self.port = _connection_options(url, redis_client)
        self.db: int = options["db"]
        self.max_history = int(max_history if max_history is not None else settings.GUILDSITE_TOPIC_HISTORY_LIMIT)
        ttl = float(message_ttl if message_ttl is not None else settings.GUILDSITE_MESSAGE_TTL_SECONDS)
        if self.max_history < 1:
            raise InvalidBackendConfig(f"max_history must be at least 1, got {max_history}")
        if ttl <= 0:
            raise InvalidBackendConfig(f"message_ttl must be positive seconds, got {message_ttl}")
        self.message_ttl_ms = max(1, int(ttl * 1000))
        self.key_prefix = key_prefix
        self.reconnect_delay = reconnect_delay
        self.subscribe_timeout = connect_timeout + command_timeout
        # A blocking pool: a burst of concurrent publishes waits for a free connection
        # instead of failing with "Too many connections" (redis-py's default pool).
        use_ssl = options.pop("ssl")
        pool = aioredis.BlockingConnectionPool(
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
        self._client = aioredis.Redis.from_pool(pool)
        # The subscriber's socket idles between messages: no read timeout (redis-py's 5 s
        # default would drop it), TCP keepalive instead, and no hidden retries: the reader
        # task reconnects itself so it knows to catch up.
        self._sub_client = aioredis.Redis(
            **options,
            ssl=use_ssl,
            protocol=2,
            socket_connect_timeout=connect_timeout,
            socket_timeout=None,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=self.subscriber_client_name,
        )
        self._store_sha: str | None = None
        self._writes: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None
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

    def same_database(self, url: str) -> bool:
        """Whether `url` names the Redis database this backend writes to (a Celery broker, say)."""
        try:
            other, host, port = _connection_options(url, None)
        except InvalidBackendConfig:
            return False
        local = {"localhost", "127.0.0.1", "::1"}
        same_host = host == self.host or (host in local and self.host in local)
        return same_host and port == self.port and other["db"] == self.db

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(f"Redis at {self.host}:{self.port} is unavailable: {exc}")

    # --- writing ---------------------------------------------------------------------

    def durable_prefix(self, namespace: str) -> str:
        return f"{self.key_prefix}d:{namespace}:"

    async def store_message(self, namespace: str, topics: list[str], message: Message,
                            max_bytes: int | None = None) -> list[str]:
        """Store and notify; returns the durable subscribers (agent ids) that must be woken."""
        if not topics:
            return []
        score = inbox_score(message)
        enqueue = durable.task_template(self)
        queue, template, caller_wakes = (enqueue.queue, enqueue.template, enqueue.caller_wakes) if enqueue else ("", "", "")
        if template:  # the script fills in the rest (see _STORE_SCRIPT)
            if _PLAIN_ID.match(namespace):
                template = template.replace(durable.NAMESPACE_MARK, namespace)
            else:  # the caller wakes every agent
                queue, template = "", ""
        args: list[Any] = [self.message_ttl_ms, self.max_history, self.durable_prefix(namespace),
                           message.sender.id or "", score, str(message.id), WAKE_TTL_MS, queue, template, caller_wakes]
        for topic, logical, data in topic_copies(namespace, topics, message, max_bytes):
            args += [f"e:{topic}", self.channel(topic), data, logical, history_limit(logical, self.max_history)]
        keys = [self.message_key(namespace, message.id)] + [self.stream_key(t) for t in topics]
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._writes.append(_Write(keys, args, done, f"message {message.id} for {topics}"))
        if self._writer is None:
            self._writer = loop.create_task(self._flush_writes())
        stored, *wake = await done
        if stored != len(topics):
            logger.debug(
                "message %s stored in %s of %d topics (the others had it already) namespace=%s",
                message.id, stored, len(topics), namespace,
            )
        return [agent.decode() if isinstance(agent, bytes) else agent for agent in wake]

    async def _flush_writes(self) -> None:
        """Send queued writes, all queued ones in one pipeline (one round trip per batch).

        Concurrent publishers thus share round trips; a lone publisher pays one. Each
        script call stays atomic on its own.
        """
        try:
            while self._writes:
                batch, self._writes = self._writes, []
                try:
                    await self._write_batch(batch)
                except _NETWORK_ERRORS as exc:
                    error = self._unavailable(exc)
                    for write in batch:
                        if not write.done.done():
                            write.done.set_exception(error)
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[_Write]) -> None:
        if self._store_sha is None:
            self._store_sha = await self._client.script_load(_STORE_SCRIPT)
        results: list[Any]
        if len(batch) == 1:
            write = batch[0]
            try:
                results = [await self._client.evalsha(self._store_sha, len(write.keys), *write.keys, *write.args)]
            except ResponseError as exc:
                results = [exc]
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                for write in batch:
                    pipe.evalsha(self._store_sha, len(write.keys), *write.keys, *write.args)
                results = await pipe.execute(raise_on_error=False)
        retry = [w for w, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
        if retry:  # the server lost its script cache (restart, SCRIPT FLUSH): load it and go again
            self._store_sha = None
            await self._write_batch(retry)
        for write, result in zip(batch, results, strict=True):
            if write.done.done() or isinstance(result, NoScriptError):
                continue
            if isinstance(result, ResponseError):  # e.g. a key of the wrong type: nothing was stored
                write.done.set_exception(MessagingError(f"Redis refused {write.label}: {result}"))
            elif isinstance(result, BaseException):
                write.done.set_exception(self._unavailable(result))
            else:
                write.done.set_result([int(result[0]), *result[1:]])

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
                entries = await self._client.xrange(self.stream_key(topic))
            else:
                entries = list(reversed(await self._client.xrevrange(self.stream_key(topic), count=limit)))
        except _NETWORK_ERRORS as exc:
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
            position = await self._client.hget(self.message_key(namespace, msg_id_since), f"e:{topic}")
            if position is not None:
                entries = await self._client.xrange(key, min=f"({position.decode()}", count=limit)
                return self._parse_entries(entries, topic)
            # Not (or no longer) in this topic: fall back to message time.
            after = id_timestamp_ms(msg_id_since)
            entries = await self._client.xrange(key, min=str(max(0, after - CLOCK_SKEW_MS)))
        except _NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        messages = [m for m in self._parse_entries(entries, topic) if (m.timestamp or 0) > after]
        return messages if limit is None else messages[:limit]

    async def get_messages_by_id(self, namespace: str, ids: list[int]) -> list[Message]:
        if not ids:
            return []
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for message_id in ids:
                    pipe.hget(self.message_key(namespace, message_id), "json")
                found = await pipe.execute()
        except _NETWORK_ERRORS as exc:
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
            last = await self._client.xrevrange(self.stream_key(topic), count=1)
        except _NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc
        channel = self.channel(topic)
        self._handlers[topic] = handler
        self._last_seen[topic] = _entry_id(last[0][0]) if last else (0, 0)
        self._channel_topic[channel] = topic
        pending = self._pending[topic] = loop.create_future()
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read(), name=f"redis-subscriber:{self.key_prefix}")
        elif self._connected:
            try:
                await self._pubsub.subscribe(channel)
            except _NETWORK_ERRORS as exc:
                logger.info("subscribe to %s deferred to reconnection: %s", topic, exc)
        try:
            await asyncio.wait_for(asyncio.shield(pending), timeout=self.subscribe_timeout)
        except TimeoutError:
            await self.unsubscribe(topic)
            raise BackendUnavailable(
                f"Redis at {self.host}:{self.port} did not confirm the subscription to {topic}"
            ) from None

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
            except _NETWORK_ERRORS as exc:
                logger.info("unsubscribe from %s not sent (%s); its notifications are ignored", topic, exc)

    def subscribed_topics(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def _open_pubsub(self) -> Any:
        pubsub = self._sub_client.pubsub()
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
                    logger.info("pub/sub connection to Redis %s:%s re-established", self.host, self.port)
                opened_before = True
                delay = self.reconnect_delay
                while True:
                    item = await pubsub.get_message(timeout=None)
                    if item is not None:
                        await self._on_pubsub(item)
            except asyncio.CancelledError:
                raise
            except (*_NETWORK_ERRORS, BackendUnavailable) as exc:
                logger.warning(
                    "pub/sub connection to Redis %s:%s lost (%s); reconnecting in %.2fs",
                    self.host, self.port, exc, delay,
                )
            except Exception:
                logger.exception("pub/sub reader for Redis %s:%s failed; restarting", self.host, self.port)
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
            self._deliver(topic, _entry_id(eid), body)
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
                entries = await self._client.xrange(key, min=f"({_format_entry_id(start)}", count=_CATCH_UP_BATCH)
            except _NETWORK_ERRORS as exc:
                raise self._unavailable(exc) from exc
            for eid, fields in entries:
                if self._deliver(topic, _entry_id(eid), fields.get(b"m", b"")):
                    self.caught_up += 1
            if len(entries) < _CATCH_UP_BATCH:
                return

    def _deliver(self, topic: str, eid: EntryId, data: bytes) -> bool:
        handler = self._handlers.get(topic)
        last = self._last_seen.get(topic)
        if handler is None or last is None or eid <= last:
            return False  # unsubscribed, or already delivered
        self._last_seen[topic] = eid
        try:
            message = Message.from_json(data)
        except InvalidMessage as exc:
            logger.error("unreadable message at %s in topic %s: %s", _format_entry_id(eid), topic, exc)
            return False
        try:
            handler(message)
        except Exception:
            logger.exception("handler for topic %s failed on message %s", topic, message.id)
        return True

    # --- lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise BackendUnavailable unless Redis answers."""
        try:
            await self._client.ping()
        except _NETWORK_ERRORS as exc:
            raise self._unavailable(exc) from exc

    async def cleanup(self) -> None:
        self._closed = True
        self._handlers.clear()
        self._channel_topic.clear()
        self._last_seen.clear()
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()
        if self._writer is not None:  # let queued writes finish (or fail) before closing
            await asyncio.wait({self._writer}, timeout=self.subscribe_timeout)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        for client in (self._client, self._sub_client):
            try:
                await client.aclose()
            except (RedisError, OSError) as exc:
                logger.debug("closing Redis client for %s:%s: %s", self.host, self.port, exc)
