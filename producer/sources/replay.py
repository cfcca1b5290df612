"""Replay an NDJSON file of Finnhub frames or single trades, as fast as possible or at the
recorded pace.

Each line is one of:

- a Finnhub frame ``{"type": "trade", "data": [...]}``: one frame, stamped like a live one, so a
  recorded session replays to the same ids it had live;
- a single raw trade ``{"s": ..., "p": ..., "v": ..., "t": ...}``: a frame of one (so identical
  lines are duplicates of each other, with the same id);
- a stream record carrying an ``id`` (e.g. a trade the publisher logged as not published): the id
  is kept, so re-sending it collapses onto the original downstream; ``rt`` is the replay time;
- any other Finnhub message (``ping``, ``error``...) or a blank line: skipped.

Lines that are not JSON or not valid trades are counted in ``stats.invalid`` and logged with their
line number; they never stop the replay. At recorded pace the source sleeps so frames go out as
far apart as their trade times (``t``) were; a consumer slower than the recording catches up
without sleeping rather than drifting.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from producer.sources.base import DistinctLimit, Frame, SourceStats
from producer.sources.pace import RecordedPace
from tradestream.logs import get_logger
from tradestream.trade import RawTrade, Trade, TradeError, now_ms, parse_raw, stamp

logger = get_logger("producer")

# Lines are read in chunks off the event loop; this bounds one chunk's memory.
READ_CHUNK_BYTES = 1 << 20


@dataclass
class ReplayStats(SourceStats):
    lines: int = 0
    skipped: int = 0  # non-trade messages and blank lines


class ReplaySource:
    def __init__(
        self,
        path: Path | str,
        *,
        pace: Literal["fast", "recorded"] = "fast",
        max_trades: int = 0,
        clock: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.pace = pace
        self.stats = ReplayStats()
        self._limit = DistinctLimit(self.stats, max_trades)
        self._clock = clock
        self._recorded = RecordedPace(sleep=sleep, monotonic=monotonic)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        with self.path.open(encoding="utf-8") as file:  # reads happen off the loop, below
            while lines := await asyncio.to_thread(file.readlines, READ_CHUNK_BYTES):
                for line in lines:
                    self.stats.lines += 1
                    frame = self._limit.admit(self._parse(line, self.stats.lines))
                    if not frame:
                        continue
                    await self._pace(frame)
                    yield frame
                    if self._limit.reached:
                        return

    def _parse(self, line: str, lineno: int) -> Frame:
        if not line.strip():
            self.stats.skipped += 1
            return []
        try:
            message = json.loads(line)
        except ValueError:
            return self._invalid(lineno, "not JSON")
        if not isinstance(message, dict):
            return self._invalid(lineno, "not a JSON object")
        received = self._clock()
        if "type" in message:
            if message["type"] != "trade":
                self.stats.skipped += 1
                return []
            return self._frame(message.get("data"), lineno, received)
        if "id" in message:
            try:
                return [Trade.model_validate({**message, "rt": received})]
            except ValueError as exc:
                return self._invalid(lineno, _reason(exc))
        return self._frame([message], lineno, received)

    def _frame(self, data: Any, lineno: int, received: int) -> Frame:
        if not isinstance(data, list):
            return self._invalid(lineno, "trade frame without a data list")
        raws: list[RawTrade] = []
        for item in data:
            try:
                raws.append(parse_raw(item if isinstance(item, dict) else {}))
            except TradeError as exc:
                self._invalid(lineno, str(exc))
        return stamp(raws, received)

    def _invalid(self, lineno: int, reason: str) -> Frame:
        self.stats.invalid += 1
        logger.warning("invalid replay input", extra={"line": lineno, "reason": reason})
        return []

    async def _pace(self, frame: Frame) -> None:
        if self.pace == "recorded":
            await self._recorded.wait(max(trade.t for trade in frame))


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors())
    return str(exc)
