"""Rate limits on Django's cache (Redis when REDIS_URL is set, so every process shares them).

A sliding window estimated from two fixed windows: the current window's count plus the previous
one's, weighted by how much of it still overlaps the last `period`. A burst is caught whether or
not it straddles a window's edge, with two atomic counters per key.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache


def _count(cache_key: str, period: int) -> int:
    # add() is a no-op when the counter exists; incr() is atomic in Redis and under the local cache's lock.
    cache.add(cache_key, 0, timeout=2 * period + 1)
    try:
        return cache.incr(cache_key)
    except ValueError:  # expired between the two calls
        cache.add(cache_key, 1, timeout=2 * period + 1)
        return 1


def over_limit(bucket: str, key: str, *, limit: int, period: int = 60) -> int | None:
    """Count one attempt; the seconds to wait when this one is over `limit` per `period`, else None."""
    now = time.time()
    window = int(now // period)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    current = _count(f"throttle:{bucket}:{digest}:{window}", period)
    previous = cache.get(f"throttle:{bucket}:{digest}:{window - 1}", 0)
    elapsed = (now - window * period) / period
    if current + previous * (1 - elapsed) <= limit:
        return None
    return _seconds_until_allowed(current, previous, elapsed, limit=limit, period=period)


def _seconds_until_allowed(current: int, previous: int, elapsed: float, *, limit: int, period: int) -> int:
    """When the next attempt (counting one more) fits under `limit`, if none is made meanwhile."""
    room = limit - 1
    if current <= room and previous > 0:
        # Later in this window, as the previous window's weight fades.
        wait = (1 - (room - current) / previous - elapsed) * period
    else:
        # In the next window, once this one's weight has faded enough.
        wait = (1 - elapsed + max(0.0, 1 - room / current)) * period
    # Rounded up past the exact boundary (where floating point may land just short of it); two periods on,
    # this window no longer counts at all.
    return max(1, min(2 * period, math.ceil(wait + 0.001)))


def sign_in_attempt(username: str, address: str) -> int | None:
    """Count a sign-in attempt (token endpoint or sign-in page) per username and per client address;
    the seconds to wait when either is over GUILDSITE_TOKEN_RATE_PER_MINUTE."""
    from django.contrib.auth.forms import UsernameField

    limit = settings.GUILDSITE_TOKEN_RATE_PER_MINUTE
    # Counted under the name sign-in would use (stripped, NFKC): "bob " and a full-width "bob" are one counter.
    username = UsernameField().to_python(username) or ""
    # Both counters move on every attempt, so neither a guessed password nor a sprayed one gets far.
    waits = [over_limit("sign-in-user", username.lower(), limit=limit),
             over_limit("sign-in-address", address or "unknown", limit=limit)]
    return max((wait for wait in waits if wait is not None), default=None)
