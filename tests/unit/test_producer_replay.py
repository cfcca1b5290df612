"""The replay source: NDJSON frames, single trades and stream records; fast or at recorded pace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from producer.sources.replay import ReplaySource
from tradestream.trade import Trade, parse_raw, stamp

T0 = 1_700_000_000_000
RT = 1_800_000_000_000


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def trade(symbol: str = "AAPL", t: int = T0, p: float = 10.0, v: float = 1) -> dict[str, Any]:
    return {"s": symbol, "p": p, "v": v, "t": t, "c": ["1"]}


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


async def replay(source: ReplaySource) -> list[list[Trade]]:
    return [frame async for frame in source]


async def test_each_kind_of_line_is_parsed_and_bad_lines_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a file mixing frames, a single trade, a stream record, pings, blanks and bad lines
    twin = trade("MSFT", T0 + 1)
    recorded = Trade(**trade("AMZN", T0 + 3), id="f" * 32, rt=T0)
    path = write(
        tmp_path / "session.ndjson",
        [
            {"type": "trade", "data": [twin, twin, trade("AAPL", T0 + 1)]},
            {"type": "ping"},
            "",
            trade("AAPL", T0 + 2),
            json.loads(recorded.to_record()),
            "this is not json",
            [1, 2],
            {"type": "trade", "data": [trade("AAPL", T0 + 4), {"s": "AAPL", "p": -1}, 5]},
            {"type": "trade", "data": "nope"},
            {"id": "short", "s": "AAPL"},
        ],
    )
    source = ReplaySource(path, clock=lambda: RT)
    # WHEN it is replayed
    frames = await replay(source)
    # THEN frames are stamped like live ones: identical trades in a frame get different ids
    raws = [parse_raw(x) for x in (twin, twin, trade("AAPL", T0 + 1))]
    assert frames[0] == stamp(raws, RT)
    assert len({t.id for t in frames[0]}) == 3
    # AND a single trade is a frame of one; a stream record keeps its id with a fresh rt
    assert [t.t for t in frames[1]] == [T0 + 2]
    assert frames[2] == [recorded.model_copy(update={"rt": RT})]
    # AND the good part of a frame with bad items goes on
    assert [t.t for t in frames[3]] == [T0 + 4]
    assert len(frames) == 4
    # AND bad input is counted (5 lines/items) and logged with its line number, ping/blank skipped
    assert source.stats.invalid == 6
    assert source.stats.skipped == 2
    assert source.stats.lines == 10
    assert source.stats.trades == source.stats.distinct == 6
    lines = [r.__dict__.get("line") for r in caplog.records if r.message == "invalid replay input"]
    assert lines == [6, 7, 8, 8, 9, 10]


async def test_identical_single_trade_lines_are_duplicates(tmp_path: Path) -> None:
    # GIVEN the same single trade on three lines
    path = write(tmp_path / "dups.ndjson", [trade(), trade(), trade()])
    source = ReplaySource(path)
    # WHEN replayed
    frames = await replay(source)
    # THEN they share one id: one distinct trade, three sent
    assert len({t.id for f in frames for t in f}) == 1
    assert (source.stats.trades, source.stats.distinct) == (3, 1)


async def test_recorded_pace_sleeps_by_the_trade_time_deltas(tmp_path: Path) -> None:
    # GIVEN frames recorded 250 ms and 750 ms apart, then one out of order
    path = write(
        tmp_path / "paced.ndjson",
        [
            {"type": "trade", "data": [trade(t=T0)]},
            {"type": "trade", "data": [trade(t=T0 + 200), trade(t=T0 + 250)]},
            trade(t=T0 + 1000),
            trade(t=T0 + 900),
        ],
    )
    clock = FakeTime()
    source = ReplaySource(path, pace="recorded", sleep=clock.sleep, monotonic=clock.monotonic)
    # WHEN replayed at recorded pace
    frames = await replay(source)
    # THEN it slept the deltas (frame time = its latest trade) and never for the late frame
    assert len(frames) == 4
    assert clock.sleeps == pytest.approx([0.25, 0.75])


async def test_recorded_pace_catches_up_when_the_consumer_was_slow(tmp_path: Path) -> None:
    # GIVEN frames 1 s apart and a consumer that spends 1.5 s after the first one
    path = write(tmp_path / "slow.ndjson", [trade(t=T0), trade(t=T0 + 1000), trade(t=T0 + 2000)])
    clock = FakeTime()
    source = ReplaySource(path, pace="recorded", sleep=clock.sleep, monotonic=clock.monotonic)
    sleeps_after: list[list[float]] = []
    # WHEN the consumer is slow once
    async for _ in source:
        sleeps_after.append(list(clock.sleeps))
        if len(sleeps_after) == 1:
            clock.now += 1.5
    # THEN the second frame goes at once and the third after the remaining 0.5 s
    assert sleeps_after == [[], [], [pytest.approx(0.5)]]


async def test_fast_pace_never_sleeps_and_max_trades_stops_early(tmp_path: Path) -> None:
    # GIVEN ten trades a second apart, replayed fast with MAX_TRADES=4
    path = write(tmp_path / "ten.ndjson", [trade(t=T0 + 1000 * i) for i in range(10)])
    clock = FakeTime()
    source = ReplaySource(path, max_trades=4, sleep=clock.sleep, monotonic=clock.monotonic)
    # WHEN replayed
    frames = await replay(source)
    # THEN four trades went out without a single sleep
    assert [t.t for f in frames for t in f] == [T0 + 1000 * i for i in range(4)]
    assert clock.sleeps == []
