"""Fixed-window rate limits on Django's cache (Redis when REDIS_URL is set, so every process shares them)."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


def over_limit(bucket: str, key: str, *, limit: int, period: int = 60) -> int | None:
    """Count one attempt; the seconds to wait when this one is over `limit` per `period`, else None."""
    now = time.time()
    window = int(now // period)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    cache_key = f"throttle:{bucket}:{digest}:{window}"
    # add() is a no-op when the counter exists; incr() is atomic in Redis and under the local cache's lock.
    cache.add(cache_key, 0, timeout=period + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # the window's key expired between the two calls
        cache.add(cache_key, 1, timeout=period + 1)
        count = 1
    if count <= limit:
        return None
    return max(1, int((window + 1) * period - now + 0.999))


def sign_in_attempt(username: str, address: str) -> int | None:
    """Count a sign-in attempt (token endpoint or sign-in page) per username and per client address;
    the seconds to wait when either is over GUILDSITE_TOKEN_RATE_PER_MINUTE."""
    limit = settings.GUILDSITE_TOKEN_RATE_PER_MINUTE
    # Both counters move on every attempt, so neither a guessed password nor a sprayed one gets far.
    waits = [over_limit("sign-in-user", username.lower(), limit=limit),
             over_limit("sign-in-address", address or "unknown", limit=limit)]
    return max((wait for wait in waits if wait is not None), default=None)
