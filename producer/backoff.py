"""Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter").

Full jitter spreads retries of many clients uniformly over the whole window, which is what keeps a
throttled shard or a recovering WebSocket server from being hit by synchronized waves.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The window of retry number ``attempt`` (1 = first): base, 2 base, 4 base... cap."""
        # The exponent is clamped so a long outage cannot overflow the float.
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 1) - 1, 60))

    def delay(self, attempt: int) -> float:
        return self._rng.uniform(0, self.ceiling(attempt))
