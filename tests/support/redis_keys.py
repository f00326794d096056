"""Deleting a test's or a benchmark's own Redis keys (they work under a throw-away prefix)."""

from __future__ import annotations


def delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
