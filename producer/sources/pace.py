"""Recorded pace: send trades as far apart as their trade times were, shared by the file replay
source and the lake replay.

The first trade time seen anchors the schedule at the current monotonic time; each later trade
time that moves past the latest one seen adds its gap to the schedule, and ``wait`` sleeps until
then. A trade time at or behind the latest goes at once (lake objects and replay files are only
roughly in time order). A consumer slower than the recording catches up without sleeping rather
than drifting, because the schedule is kept from the anchor, not from the last send.

``max_gap_s`` caps each gap: a lake spans nights, weekends and outages, and replaying those
silences at their recorded length would stall a replay for hours between two trades.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RecordedPace:
    def __init__(
        self,
        *,
        max_gap_s: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_gap_s is not None and max_gap_s <= 0:
            raise ValueError("max_gap_s must be > 0 (or None for no cap)")
        self.max_gap_s = max_gap_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._due: float | None = None  # when the latest trade time is due, monotonic seconds
        self._latest = 0  # the latest trade time seen, epoch ms

    async def wait(self, trade_time_ms: int) -> None:
        """Sleep until a trade recorded at ``trade_time_ms`` is due."""
        if self._due is None:
            self._due, self._latest = self._monotonic(), trade_time_ms
            return
        gap = (trade_time_ms - self._latest) / 1000
        if gap <= 0:
            return
        self._latest = trade_time_ms
        self._due += gap if self.max_gap_s is None else min(gap, self.max_gap_s)
        delay = self._due - self._monotonic()
        if delay > 0:
            await self._sleep(delay)
