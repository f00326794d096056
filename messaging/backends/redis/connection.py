"""Which Redis a backend talks to: a URL or the seed's `redis_client` object, as redis-py arguments."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlparse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from messaging.errors import InvalidBackendConfig

logger = logging.getLogger(__name__)

NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_REDIS_CLIENT_KEYS = {"host", "port", "ssl", "username", "password", "db"}


def connection_options(url: str | None, redis_client: dict[str, Any] | None) -> tuple[dict[str, Any], str, int]:
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


class LeanBlockingPool(BlockingConnectionPool):
    """redis-py's blocking pool, lighter per command while a connection is free: it skips the pool's
    observability counters, its release event and its probe of the socket for unread data (redis-py
    drops a connection whose command was cancelled mid-reply), about a third of a command's cost in
    daphne's profile. When every connection is busy, or the pool is in maintenance, redis-py's own
    path runs (and waits). (The release event serves credential providers that re-authenticate
    connections; guildsite connects with a URL's fixed credentials.)"""

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if self._in_maintenance or not self._available_connections:
            return await super().get_connection()
        connection = self._available_connections.pop()
        self._in_use_connections.add(connection)
        try:
            await connection.connect()  # nothing to do while connected
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        if self._in_maintenance or connection.should_reconnect():
            return await super().release(connection)
        self._in_use_connections.remove(connection)
        self._available_connections.append(connection)
        async with self._condition:
            self._condition.notify()


def site_client(url: str, *, timeout: float, connect_timeout: float = 2.0, max_connections: int = 50) -> Redis:
    """An asyncio client of the site's Redis whose pool makes a burst wait for a free connection: redis-py's
    default pool fails past 100 at once ("Too many connections"), as 500 sockets closing together did."""
    # Retried like the messaging backend's: a connection Redis closed (a restart, an idle cut-off) is
    # found out by the command that uses it next.
    pool = LeanBlockingPool.from_url(url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
                                     socket_connect_timeout=connect_timeout, health_check_interval=30,
                                     retry=Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.25), 2))
    return Redis.from_pool(pool)
