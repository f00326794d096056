"""Reconnect delays: exponential back-off with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random):
        self.base, self.cap, self._rng = base, cap, rng
        self.attempt = 0

    @property
    def ceiling(self) -> float:
        """Upper bound of the next delay."""
        return min(self.cap, self.base * 2 ** min(self.attempt, 32))  # min(): keeps the power finite

    def next_delay(self) -> float:
        # Full jitter: uniform in [0, ceiling], so many agents don't reconnect in lockstep.
        delay = self._rng() * self.ceiling
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
