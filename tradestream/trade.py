"""The trade record: Finnhub's fields plus a deterministic id and the edge receive time.

One JSON object per Kinesis record, UTF-8. Every retry and replay of the same Finnhub trade maps to
the same ``id``, so the sinks can be idempotent (DESIGN.md, "Trade record").
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

# Finnhub symbols look like "AAPL", "BINANCE:BTCUSDT", "OANDA:EUR_USD" or "IC MARKETS:1".
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 .:_\-/^=&]{0,49}$"

# Trade times before 2000-01-01 or after 2100 are unit errors (seconds, micros), not trades.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000

Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN)]


class TradeError(ValueError):
    """A payload that is not a valid trade; it can never succeed, so it belongs in a DLQ."""

    code = "InvalidTrade"


class RawTrade(BaseModel):
    """A trade as Finnhub sends it inside a ``{"type": "trade", "data": [...]}`` frame."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    s: Symbol
    # Finite checked in pydantic-core: a Python validator per number costs ~1 µs per trade.
    p: float = Field(gt=0, allow_inf_nan=False)
    v: float = Field(ge=0, allow_inf_nan=False)
    t: int = Field(ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS)
    c: tuple[str, ...] | None = None


class Trade(RawTrade):
    """The record on the stream: a raw trade stamped at the edge with ``id`` and ``rt``."""

    id: str = Field(min_length=16, max_length=64)
    rt: int = Field(ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS, description="edge receive time, epoch ms")

    def to_record(self) -> bytes:
        """Serialise compactly; field order is stable, so identical trades give identical bytes."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_record(cls, data: bytes | str) -> Trade:
        """Decode one Kinesis record, raising TradeError for anything that is not a valid trade."""
        try:
            return cls.model_validate_json(data)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise TradeError(_short_error(exc)) from exc


def trade_id(raw: RawTrade, occurrence: int = 0) -> str:
    """Derive the deterministic id of a trade.

    ``occurrence`` tells apart trades that are identical in every field inside one frame (two fills
    of the same size at the same price in the same millisecond are two trades). The same frame
    replayed gives the same occurrences, hence the same ids; a duplicate re-sent in a later frame
    gets occurrence 0 again, hence collapses onto the first one downstream.
    """
    conditions = ",".join(raw.c or ())
    key = f"{raw.s}|{raw.p!r}|{raw.v!r}|{raw.t}|{conditions}|{occurrence}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stamp(raws: Iterable[RawTrade], received_ms: int | None = None) -> list[Trade]:
    """Turn the raw trades of one frame (or request) into stream records with ids."""
    received = now_ms() if received_ms is None else received_ms
    # The raw trades are validated already, and id and rt are ours: constructing without
    # validating again halves the cost.
    return [
        Trade.model_construct(**fields, id=record_id, rt=received)
        for record_id, fields in _identified(raws)
    ]


class StreamRecord(NamedTuple):
    """One Kinesis record, ready for PutRecords."""

    id: str
    partition_key: str
    data: bytes


def stream_records(raws: Iterable[RawTrade], received_ms: int | None = None) -> list[StreamRecord]:
    """``stamp()`` then ``to_record()``, without building ``Trade`` models: the same ids and the
    same bytes for a third of the CPU, which counts when a 500-trade ingest request holds the
    event loop for all of it (bench/ingest.py)."""
    received = now_ms() if received_ms is None else received_ms
    records = []
    for record_id, fields in _identified(raws):
        # Same field order and serialiser (pydantic-core) as Trade.to_record(); c is left out
        # when None, as exclude_none does there.
        if fields["c"] is None:
            del fields["c"]
        fields["id"] = record_id
        fields["rt"] = received
        records.append(StreamRecord(record_id, fields["s"], to_json(fields)))
    return records


def _identified(raws: Iterable[RawTrade]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each raw trade's id and its fields, numbers as the record holds them."""
    # Keyed on the field values, not the models: hashing a frozen model costs several times more.
    seen: dict[tuple[Any, ...], int] = {}
    for raw in raws:
        key = (raw.s, raw.p, raw.v, raw.t, raw.c)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        # float(): a strict model may hold an int price; the record's numbers are floats, as
        # validating a Trade would have made them.
        fields = {"s": raw.s, "p": float(raw.p), "v": float(raw.v), "t": raw.t, "c": raw.c}
        yield trade_id(raw, occurrence), fields


def parse_raw(payload: Mapping[str, Any]) -> RawTrade:
    """Validate one Finnhub trade object, raising TradeError with a readable reason."""
    try:
        return RawTrade.model_validate(payload)
    except ValueError as exc:
        raise TradeError(_short_error(exc)) from exc


def _short_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in errors()]
        return "; ".join(parts)
    return str(exc)


def dumps(obj: Any) -> str:
    """Compact JSON used for every log line and ready line the project prints."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, default=str)
