"""Which trades of the lake a replay puts back: symbols and a trade-time window.

The window is on the trade time ``t`` and inclusive at both ends, as the read API's ``from`` and
``to`` are. A bound is epoch milliseconds or an ISO 8601 time (UTC when it has no offset).

The lake's Hive partitions (``symbol=``, ``date=``: the enrich function's partition keys, the
symbol percent-encoded and the trade's UTC day) let a whole folder be skipped unlisted when no
trade in it can match; ``admits_partition`` decides that from the folder's name alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tradestream.trade import Trade

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_DIGITS = re.compile(r"^[0-9]{1,16}$")


class SelectionError(ValueError):
    """A selection that cannot select anything as given; the message says what to write."""


def instant_ms(text: str) -> int:
    """``text`` as epoch ms: digits are ms already; otherwise an ISO 8601 time or date."""
    value = text.strip()
    if _DIGITS.match(value):
        return int(value)
    try:
        # ISO 8601 allows lower-case "t" and "z"; fromisoformat takes upper case only.
        instant = datetime.fromisoformat(value.upper())
    except ValueError:
        raise SelectionError(
            f"{text!r} is not a time: give epoch milliseconds (1704205800000) or an ISO 8601 "
            "time (2024-01-02T14:30:00Z; UTC when it has no offset)"
        ) from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return (instant - _EPOCH) // _ONE_MS


def utc_day(ms: int) -> date:
    return (_EPOCH + timedelta(milliseconds=ms)).date()


@dataclass(frozen=True)
class Selection:
    symbols: frozenset[str] = frozenset()  # empty: every symbol
    from_ms: int | None = None
    to_ms: int | None = None

    def __post_init__(self) -> None:
        if self.from_ms is not None and self.to_ms is not None and self.from_ms > self.to_ms:
            raise SelectionError(
                f"from ({self.from_ms}) is after to ({self.to_ms}): swap them or widen the window"
            )

    @classmethod
    def parse(
        cls, symbols: Iterable[str] = (), from_: str | None = None, to: str | None = None
    ) -> Selection:
        return cls(
            frozenset(symbols),
            None if from_ is None else instant_ms(from_),
            None if to is None else instant_ms(to),
        )

    def admits(self, trade: Trade) -> bool:
        if self.symbols and trade.s not in self.symbols:
            return False
        if self.from_ms is not None and trade.t < self.from_ms:
            return False
        return self.to_ms is None or trade.t <= self.to_ms

    def admits_partition(self, name: str, value: str) -> bool:
        """False when no trade under the partition folder ``name=value`` (value decoded) can
        match. Folders of other names, and values that are not what the lake writes, are read."""
        if name == "symbol":
            return not self.symbols or value in self.symbols
        if name == "date":
            try:
                day = date.fromisoformat(value)
            except ValueError:
                return True
            if self.from_ms is not None and day < utc_day(self.from_ms):
                return False
            return self.to_ms is None or day <= utc_day(self.to_ms)
        return True

    def to_json(self) -> dict[str, Any]:
        return {"symbols": sorted(self.symbols), "from_ms": self.from_ms, "to_ms": self.to_ms}
