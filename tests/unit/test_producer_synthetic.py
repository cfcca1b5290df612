"""The synthetic source: deterministic, Finnhub-shaped (duplicates, same ms, v=0), exact limit."""

from __future__ import annotations

from collections import Counter

import pytest

from producer.sources.synthetic import SyntheticSource
from tradestream.synthetic import raw_frames
from tradestream.trade import RawTrade, Trade, stamp

SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")


class FakeTime:
    """A monotonic clock that only moves when the source sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def frames_of(source: SyntheticSource) -> list[list[Trade]]:
    return [frame async for frame in source]


def fields(trade: Trade) -> tuple[object, ...]:
    return (trade.id, trade.s, trade.p, trade.v, trade.t, trade.c)


async def test_same_seed_gives_identical_trades_and_another_seed_does_not() -> None:
    # GIVEN two sources with the same seed and one with another, receiving at different times
    a = SyntheticSource(SYMBOLS, seed=42, max_trades=800, clock=lambda: 1_800_000_000_000)
    b = SyntheticSource(SYMBOLS, seed=42, max_trades=800, clock=lambda: 1_800_000_099_999)
    c = SyntheticSource(SYMBOLS, seed=43, max_trades=800)
    # WHEN each runs to the limit
    trades_a = [fields(t) for f in await frames_of(a) for t in f]
    trades_b = [fields(t) for f in await frames_of(b) for t in f]
    trades_c = [fields(t) for f in await frames_of(c) for t in f]
    # THEN the same seed gives the same ids, prices, volumes and times; another seed does not
    assert trades_a == trades_b
    assert len(trades_a) >= 800
    assert {t[0] for t in trades_a}.isdisjoint({t[0] for t in trades_c})


async def test_receive_time_is_the_clock_and_trade_times_are_simulated() -> None:
    # GIVEN a source whose wall clock reads a fixed instant far from the simulated start
    source = SyntheticSource(SYMBOLS, seed=1, max_trades=50, clock=lambda: 1_800_000_000_000)
    # WHEN it runs
    trades = [t for f in await frames_of(source) for t in f]
    # THEN rt is that clock and t comes from the seeded simulated clock (January 2024)
    assert {t.rt for t in trades} == {1_800_000_000_000}
    assert all(1_704_205_800_000 <= t.t < 1_704_205_800_000 + 2 * 3_600_000 for t in trades)


async def test_frames_carry_every_finnhub_quirk() -> None:
    # GIVEN a source running for a few thousand trades
    source = SyntheticSource(SYMBOLS, seed=7, max_trades=3000)
    # WHEN it runs
    frames = await frames_of(source)
    # THEN frames hold several trades, some in the same millisecond
    assert max(len(f) for f in frames) >= 5
    assert any(len({(t.s, t.t) for t in f}) < len(f) for f in frames)
    # AND identical trades inside one frame get different ids
    twins = [
        f
        for f in frames
        if len({(t.s, t.p, t.v, t.t, t.c) for t in f}) < len(f) and len({t.id for t in f}) == len(f)
    ]
    assert twins
    # AND an exact earlier trade re-sent in a later frame keeps its id
    first_frame_of: dict[str, int] = {}
    resent = 0
    for n, frame in enumerate(frames):
        for trade in frame:
            if trade.id in first_frame_of and first_frame_of[trade.id] < n:
                resent += 1
            first_frame_of.setdefault(trade.id, n)
    assert resent > 0
    # AND price-only updates (v=0) occur, and are counted
    zero_volume = sum(1 for f in frames for t in f if t.v == 0)
    assert zero_volume > 0
    assert source.stats.price_updates == zero_volume
    # AND every symbol trades
    assert {t.s for f in frames for t in f} == set(SYMBOLS)


@pytest.mark.parametrize("limit", [1, 7, 333, 2500])
async def test_stops_after_exactly_max_trades_distinct_ids(limit: int) -> None:
    # GIVEN a source limited to `limit` distinct trades
    source = SyntheticSource(SYMBOLS, seed=3, max_trades=limit)
    # WHEN it runs to the end
    trades = [t for f in await frames_of(source) for t in f]
    # THEN it produced exactly `limit` distinct ids; duplicates were sent but did not count
    ids = Counter(t.id for t in trades)
    assert len(ids) == source.stats.distinct == limit
    assert source.stats.trades == len(trades)
    assert source.stats.duplicates == len(trades) - limit == sum(n - 1 for n in ids.values())


async def test_cut_frame_keeps_the_ids_of_the_full_frame() -> None:
    # GIVEN the raw frames a seed produces, stamped whole
    expected = [
        t.id
        for raws in _first_raw_frames(seed=5, count=400)
        for t in stamp(raws, 1_800_000_000_000)
    ]
    # WHEN a limited source cuts its last frame
    source = SyntheticSource(SYMBOLS, seed=5, max_trades=101)
    got = [t.id for f in await frames_of(source) for t in f]
    # THEN what it emitted is a prefix of the full stamped sequence
    assert got == expected[: len(got)]
    assert len(set(got)) == 101


async def test_rate_paces_trades_per_second() -> None:
    # GIVEN a source at 100 trades/s on a fake clock
    clock = FakeTime()
    source = SyntheticSource(
        SYMBOLS, seed=9, rate=100, max_trades=500, sleep=clock.sleep, monotonic=clock.monotonic
    )
    # WHEN it runs to the limit
    frames = await frames_of(source)
    # THEN the simulated time spent is exactly the trades sent before the last frame / rate
    before_last = source.stats.trades - len(frames[-1])
    assert clock.now == pytest.approx(before_last / 100)
    assert all(s >= 0 for s in clock.sleeps)


async def test_rate_zero_never_waits_but_yields_to_the_loop() -> None:
    # GIVEN an unthrottled source on a fake clock
    clock = FakeTime()
    source = SyntheticSource(
        SYMBOLS, seed=9, rate=0, max_trades=300, sleep=clock.sleep, monotonic=clock.monotonic
    )
    # WHEN it runs
    frames = await frames_of(source)
    # THEN it only ever "sleeps" 0 s, once per frame but the last
    assert clock.sleeps == [0] * (len(frames) - 1)


def _first_raw_frames(seed: int, count: int) -> list[list[RawTrade]]:
    frames: list[list[RawTrade]] = []
    for raws in raw_frames(SYMBOLS, seed):
        frames.append(raws)
        if len(frames) == count:
            return frames
    return frames
