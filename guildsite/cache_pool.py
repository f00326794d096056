"""One Redis connection pool per process for Django's cache.

Django makes a cache backend per thread, each with pools of its own; under ASGI every request's sync code runs on a
thread of its own, so each request would open (and leave behind) a Redis connection of its own. Django builds the
pool with `pool_class.from_url`: this class hands every backend the process's one pool for that URL (redis-py
starts a pool afresh in a forked child, as a Celery worker's pool process is)."""

from __future__ import annotations

import threading
from typing import Any

from redis import ConnectionPool

_pools: dict[tuple[str, tuple[tuple[str, Any], ...]], ConnectionPool] = {}
_lock = threading.Lock()


class SharedConnectionPool(ConnectionPool):
    @classmethod
    def from_url(cls, url: str, **options: Any) -> ConnectionPool:
        key = (url, tuple(sorted((name, repr(value)) for name, value in options.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = ConnectionPool.from_url(url, **options)
            return pool
