"""The sign-in throttle's Retry-After is honest: waiting that long is enough, and not much more than needed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from guildsite.throttle import _seconds_until_allowed

PERIOD = 60


def next_attempt_fits(current: int, previous: int, elapsed: float, wait: float, limit: int) -> bool:
    """Would one more attempt, `wait` seconds from now (none made meanwhile), be within the limit?"""
    at = elapsed + wait / PERIOD
    if at < 1:  # still this window
        return current + 1 + previous * (1 - at) <= limit
    if at < 2:  # the next window: this one becomes the previous
        return 1 + current * (1 - (at - 1)) <= limit
    return True


@given(limit=st.integers(1, 50), current=st.integers(1, 200), previous=st.integers(0, 200),
       elapsed=st.floats(0, 0.999))
def test_waiting_as_told_is_enough_and_not_much_more(limit, current, previous, elapsed):
    if current + previous * (1 - elapsed) <= limit:
        return  # not throttled
    wait = _seconds_until_allowed(current, previous, elapsed, limit=limit, period=PERIOD)
    assert 1 <= wait <= 2 * PERIOD
    assert next_attempt_fits(current, previous, elapsed, wait, limit)
    if wait > 1:
        assert not next_attempt_fits(current, previous, elapsed, wait - 1.001, limit)
