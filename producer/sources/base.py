"""What every source shares: the frame contract, per-source counters, and the MAX_TRADES limit.

A source is an async iterator of frames; a frame is the ``list[Trade]`` of one Finnhub message
(or of one replayed line, or one synthetic tick), stamped by ``tradestream.trade.stamp`` so ids are
deterministic. Iterating a source is one-shot.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tradestream.trade import Trade

Frame = list[Trade]

# Duplicates re-sent by Finnhub (and by the synthetic source) arrive close to the original, so a
# window of recent ids counts distinct trades exactly in practice while keeping memory bounded.
RECENT_IDS_WINDOW = 50_000


@dataclass
class SourceStats:
    frames: int = 0  # frames emitted
    trades: int = 0  # trades emitted, duplicates included
    distinct: int = 0  # trades whose id was not seen among the last RECENT_IDS_WINDOW ids
    invalid: int = 0  # items (or lines, messages) refused by validation, counted and logged


@runtime_checkable
class FrameSource(Protocol):
    @property
    def stats(self) -> SourceStats: ...

    def __aiter__(self) -> AsyncIterator[Frame]: ...


class RecentIds:
    """A bounded set: remembers the last ``capacity`` ids added."""

    def __init__(self, capacity: int = RECENT_IDS_WINDOW) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, trade_id: str) -> bool:
        """Add an id; True if it was not among the recent ones."""
        if trade_id in self._ids:
            return False
        self._ids[trade_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


class DistinctLimit:
    """Counts what a source emits and enforces MAX_TRADES distinct trades (0 = unbounded).

    Duplicates do not count toward the limit. The frame that reaches the limit is cut right after
    the last distinct trade it needs; ids are unaffected, because a trade's occurrence number only
    depends on the trades before it in its frame.
    """

    def __init__(self, stats: SourceStats, max_trades: int = 0) -> None:
        self.stats = stats
        self.max_trades = max_trades
        self._recent = RecentIds()

    @property
    def reached(self) -> bool:
        return self.max_trades > 0 and self.stats.distinct >= self.max_trades

    def admit(self, frame: Frame) -> Frame:
        """The part of ``frame`` to emit, with the counters updated for it."""
        admitted: Frame = []
        for trade in frame:
            if self.reached:
                break
            if self._recent.add(trade.id):
                self.stats.distinct += 1
            admitted.append(trade)
        if admitted:
            self.stats.frames += 1
            self.stats.trades += len(admitted)
        return admitted
