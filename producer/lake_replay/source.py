"""The lake as a producer source: the selected trades of the lake's objects, as frames.

- fast: objects in listing order (symbol, then day, then the order they were written), one read
  ahead while the current one's trades go out; memory holds two objects.
- recorded: one UTC day at a time (the ``date=`` partition), every selected symbol of that day
  merged and sorted by trade time, then sent at the recorded pace (``RecordedPace``) with each
  gap capped at ``max_gap_s``; memory holds the day's selected trades.

Duplicates: the lake is at-least-once, so a trade may have several lines. A trade's partition
(symbol, UTC day) is a function of the trade itself, so all its copies share one partition folder;
ids are therefore collapsed exactly within each (symbol, date) partition, holding one partition's
ids at a time (objects outside such partitions share one run-wide set). Putting both copies would
be harmless (both sinks are idempotent), but it costs a put each and doubles the lake's lines.

Counts reconcile when the source ends: ``lines == trades + skipped_by_filter + duplicates +
invalid``; ``unreadable_objects`` lists objects whose lines could not be read at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from producer.lake_replay.listing import LakeListing, Leaf
from producer.lake_replay.objects import (
    InvalidLine,
    ObjectTrades,
    UnreadableObjectError,
    object_trades,
)
from producer.lake_replay.selection import Selection
from producer.sources.base import Frame, SourceStats
from producer.sources.pace import RecordedPace
from tradestream.logs import get_logger
from tradestream.retry import error_code
from tradestream.trade import Trade

logger = get_logger("producer")

Pace = Literal["fast", "recorded"]
PACES: tuple[Pace, ...] = ("fast", "recorded")
DEFAULT_MAX_GAP_S = 5.0
FRAME_TRADES = 500  # trades per frame in fast mode: one PutRecords call's worth
INVALID_EXAMPLES = 20  # invalid lines quoted in the stats (every one is logged and counted)

Scope = tuple[str, str] | None  # the (symbol, date) partition ids are collapsed in


@dataclass
class LakeStats(SourceStats):
    objects_listed: int = 0
    objects_read: int = 0
    lines: int = 0
    skipped_by_filter: int = 0
    duplicates: int = 0  # lines whose trade id was put already in this run
    list_calls: int = 0
    partitions_pruned: int = 0
    invalid_by_object: dict[str, int] = field(default_factory=dict)
    invalid_examples: list[dict[str, Any]] = field(default_factory=list)
    unreadable_objects: dict[str, str] = field(default_factory=dict)  # key -> reason


class LakeSource:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        selection: Selection,
        *,
        pace: Pace = "fast",
        max_gap_s: float = DEFAULT_MAX_GAP_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = LakeStats()
        self.pace = pace
        self._s3 = s3
        self._bucket = bucket
        self._listing = LakeListing(s3, bucket, prefix, selection)
        self._selection = selection
        self._recorded = RecordedPace(max_gap_s=max_gap_s, sleep=sleep, monotonic=monotonic)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        leaves = await self._listing.leaves()
        self.stats.objects_listed = sum(len(leaf.keys) for leaf in leaves)
        self.stats.list_calls = self._listing.stats.list_calls
        self.stats.partitions_pruned = self._listing.stats.partitions_pruned
        frames = self._paced(leaves) if self.pace == "recorded" else self._fast(leaves)
        # aclosing: a stopped replay cancels its read ahead now, not when collected.
        async with contextlib.aclosing(frames):
            async for frame in frames:
                self.stats.frames += 1
                self.stats.trades += len(frame)
                self.stats.distinct += len(frame)
                yield frame

    # -- fast -----------------------------------------------------------------------------------

    async def _fast(self, leaves: list[Leaf]) -> AsyncGenerator[Frame, None]:
        seen: dict[Scope, set[str]] = {}
        current: Scope = None
        reads = self._read_ahead((leaf, key) for leaf in leaves for key in leaf.keys)
        async with contextlib.aclosing(reads):
            async for leaf, trades in reads:
                scope = _scope(leaf)
                if scope != current and current is not None:
                    seen.pop(current, None)  # no copy of its trades lies in another partition
                current = scope
                fresh = self._first_copies(trades, seen.setdefault(scope, set()))
                for start in range(0, len(fresh), FRAME_TRADES):
                    yield fresh[start : start + FRAME_TRADES]

    def _first_copies(self, trades: list[Trade], ids: set[str]) -> list[Trade]:
        fresh = []
        for trade in trades:
            if trade.id in ids:
                self.stats.duplicates += 1
            else:
                ids.add(trade.id)
                fresh.append(trade)
        return fresh

    async def _read_ahead(
        self, objects: Iterable[tuple[Leaf, str]]
    ) -> AsyncGenerator[tuple[Leaf, list[Trade]], None]:
        """Each object's selected trades, the next object's read already under way."""
        pending: tuple[Leaf, asyncio.Task[list[Trade]]] | None = None
        try:
            for leaf, key in objects:
                started = (leaf, asyncio.create_task(self._read(key)))
                if pending is not None:
                    yield pending[0], await pending[1]
                pending = started
            if pending is not None:
                yield pending[0], await pending[1]
                pending = None
        finally:
            if pending is not None:
                pending[1].cancel()

    # -- recorded -------------------------------------------------------------------------------

    async def _paced(self, leaves: list[Leaf]) -> AsyncGenerator[Frame, None]:
        for keys in _by_day(leaves):
            unique: dict[str, Trade] = {}
            for key in keys:
                for trade in await self._read(key):
                    if unique.setdefault(trade.id, trade) is not trade:
                        self.stats.duplicates += 1
            for frame in _same_time_runs(sorted(unique.values(), key=lambda t: (t.t, t.id))):
                await self._recorded.wait(frame[0].t)
                yield frame

    # -- reading one object ---------------------------------------------------------------------

    async def _read(self, key: str) -> list[Trade]:
        """The object's trades that the selection admits; the rest counted (and invalid lines
        logged with the key)."""
        try:
            response = await self._s3.get_object(Bucket=self._bucket, Key=key)
            async with response["Body"] as body:
                data = await body.read()
            found = await asyncio.to_thread(object_trades, key, data)
        except (ClientError, BotoCoreError, UnreadableObjectError) as exc:
            reason = str(exc) if isinstance(exc, UnreadableObjectError) else error_code(exc)
            self.stats.unreadable_objects[key] = reason
            logger.error("lake object not readable", extra={"key": key, "reason": reason})
            return []
        self.stats.objects_read += 1
        self._count(found)
        selected = [t for t in found.trades if self._selection.admits(t)]
        self.stats.skipped_by_filter += len(found.trades) - len(selected)
        return selected

    def _count(self, found: ObjectTrades) -> None:
        self.stats.lines += found.lines
        self.stats.invalid += len(found.invalid)
        for line in found.invalid:
            self._report(line)

    def _report(self, line: InvalidLine) -> None:
        self.stats.invalid_by_object[line.key] = self.stats.invalid_by_object.get(line.key, 0) + 1
        if len(self.stats.invalid_examples) < INVALID_EXAMPLES:
            self.stats.invalid_examples.append(
                {"key": line.key, "line": line.line, "reason": line.reason}
            )
        logger.warning(
            "invalid lake line",
            extra={"key": line.key, "line": line.line, "reason": line.reason},
        )


def _scope(leaf: Leaf) -> Scope:
    symbol, day = leaf.partition("symbol"), leaf.partition("date")
    return None if symbol is None or day is None else (symbol, day)


def _by_day(leaves: list[Leaf]) -> list[list[str]]:
    """The objects of each UTC day, days in order; objects outside a date partition last."""
    days: dict[str | None, list[str]] = {}
    for leaf in leaves:
        days.setdefault(leaf.partition("date"), []).extend(leaf.keys)
    ordered = sorted(day for day in days if day is not None)
    return [days[day] for day in ordered] + ([days[None]] if None in days else [])


def _same_time_runs(trades: list[Trade]) -> Iterator[Frame]:
    """Trades of one trade time go out together, in one frame (they are one instant)."""
    start = 0
    for end in range(1, len(trades) + 1):
        if end == len(trades) or trades[end].t != trades[start].t:
            yield trades[start:end]
            start = end
