"""A deterministic synthetic market: a seeded multi-symbol random walk, in Finnhub-shaped frames.

It produces everything Finnhub does that downstream code must survive: several trades per frame,
same-millisecond trades, identical trades inside one frame (two fills; different ids), an exact
earlier trade re-sent in a later frame (a duplicate; same id), and ``v=0`` price updates.

Same seed => same trades (ids, prices, volumes, times): trade times come from a seeded simulated
clock that starts at a fixed instant, never from the wall clock. Only ``rt``, the receive time, is
the wall clock, as it is for real input.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from producer.sources.base import DistinctLimit, Frame, SourceStats
from tradestream.trade import RawTrade, now_ms, stamp

# 2024-01-02 14:30 UTC, a market open; the seed adds up to an hour so runs differ by seed.
SIMULATED_START_MS = 1_704_205_800_000
ANCHOR_PRICES = {"AAPL": 190.0, "MSFT": 410.0, "AMZN": 180.0, "BINANCE:BTCUSDT": 65_000.0}
STOCK_CONDITIONS: tuple[tuple[str, ...], ...] = (
    ("1",),
    ("1", "12"),
    ("1", "24"),
    ("1", "12", "37"),
)

# Per-frame probabilities; high enough that a few hundred trades show every case.
P_PRICE_UPDATE = 0.05  # a trade with v=0
P_IDENTICAL_TWIN = 0.10  # a frame carries an exact copy of one of its trades
P_RESEND = 0.08  # a frame re-sends a trade of the previous frame


@dataclass
class SyntheticStats(SourceStats):
    price_updates: int = 0  # emitted trades with v=0

    @property
    def duplicates(self) -> int:
        """Re-sent trades emitted (same id as an earlier one)."""
        return self.trades - self.distinct


def raw_frames(symbols: Sequence[str], seed: int) -> Iterator[list[RawTrade]]:
    """The endless, deterministic sequence of raw frames for ``symbols`` and ``seed``."""
    rng = random.Random(seed)
    prices = {s: ANCHOR_PRICES.get(s) or round(rng.uniform(20, 500), 2) for s in symbols}
    clock = SIMULATED_START_MS + rng.randrange(3_600_000)
    previous: list[RawTrade] = []
    while True:
        # Frames are >= 3 ms apart and trades sit within 2 ms before their frame's time, so two
        # frames can never share a trade by accident: the only cross-frame repeats are re-sends.
        clock += rng.randint(3, 40)
        frame = [_trade(rng, rng.choice(symbols), prices, clock) for _ in range(rng.randint(1, 6))]
        if rng.random() < P_IDENTICAL_TWIN:
            frame.append(rng.choice(frame))
        if previous and rng.random() < P_RESEND:
            frame.append(rng.choice(previous))
        yield frame
        # A re-send must repeat a trade as first sent; the previous frame's re-send is itself old.
        previous = [raw for raw in frame if raw.t > clock - 3]


def _trade(rng: random.Random, symbol: str, prices: dict[str, float], clock: int) -> RawTrade:
    price = max(0.01, round(prices[symbol] * math.exp(rng.gauss(0, 0.0004)), 2))
    prices[symbol] = price
    crypto = ":" in symbol
    if rng.random() < P_PRICE_UPDATE:
        volume = 0.0
    elif crypto:
        volume = round(rng.uniform(0.0001, 0.5), 6)
    else:
        volume = float(rng.randint(1, 300))
    return RawTrade(
        s=symbol,
        p=price,
        v=volume,
        t=clock - rng.choice((0, 0, 0, 1, 2)),
        c=None if crypto else rng.choice(STOCK_CONDITIONS),
    )


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
