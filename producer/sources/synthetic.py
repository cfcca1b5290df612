"""The synthetic source: the seeded market of ``tradestream.synthetic``, stamped and paced.

Same seed => same trades and ids. Only ``rt``, the receive time, is the wall clock, as it is for
real input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from producer.sources.base import DistinctLimit, Frame, SourceStats
from tradestream.synthetic import raw_frames
from tradestream.trade import now_ms, stamp


@dataclass
class SyntheticStats(SourceStats):
    price_updates: int = 0  # emitted trades with v=0

    @property
    def duplicates(self) -> int:
        """Re-sent trades emitted (same id as an earlier one)."""
        return self.trades - self.distinct


class SyntheticSource:
    """Frames at ``rate`` trades/s (0 = as fast as the consumer takes them), until ``max_trades``
    distinct trades (0 = forever). ``stats.distinct`` is the number of distinct ids produced."""

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        seed: int = 7,
        rate: float = 0.0,
        max_trades: int = 0,
        clock: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not symbols:
            raise ValueError("the synthetic source needs at least one symbol")
        self.symbols = tuple(symbols)
        self.seed = seed
        self.rate = rate
        self.stats = SyntheticStats()
        self._limit = DistinctLimit(self.stats, max_trades)
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        started = self._monotonic()
        for raws in raw_frames(self.symbols, self.seed):
            frame = self._limit.admit(stamp(raws, self._clock()))
            self.stats.price_updates += sum(1 for trade in frame if trade.v == 0)
            if frame:
                yield frame
            if self._limit.reached:
                return
            await self._pace(started)

    async def _pace(self, started: float) -> None:
        if self.rate <= 0:
            # Unthrottled still yields to the loop once a frame, so signals and I/O get a turn.
            await self._sleep(0)
            return
        ahead = started + self.stats.trades / self.rate - self._monotonic()
        await self._sleep(max(0.0, ahead))
