"""The trade record: Finnhub's fields plus a deterministic id and the edge receive time.

One JSON object per Kinesis record, UTF-8. Every retry and replay of the same Finnhub trade maps to
the same ``id``, so the sinks can be idempotent (DESIGN.md, "Trade record").

What the consumers accept (``Trade.from_record``): the edge's records (``id`` and ``rt``), and a
plain Finnhub trade object as any other producer puts it, one per record, e.g.
``{"s":"AAPL","p":187.5,"v":100,"t":1733300000000,"c":["1"]}``. Whatever lacks the stamp gets
it at the consumer by the edge's rules: a missing ``id`` is the one ``stamp([raw])`` gives
(occurrence 0, since a record holds one trade), a missing ``rt`` is the record's arrival time.
Fields that are not the trade's (an ``ingested_at`` of another producer) are ignored. Anything
else that is not a valid trade stays a TradeError, with the same reason as ever.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json
from typing_extensions import TypedDict

# Finnhub symbols look like "AAPL", "BINANCE:BTCUSDT", "OANDA:EUR_USD" or "IC MARKETS:1".
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 .:_\-/^=&]{0,49}$"

# Trade times before 2000-01-01 or after 2100 are unit errors (seconds, micros), not trades.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000

# The field rules, shared by RawTrade and the ingest API's plain-dict trade (ingest_api/models.py).
# Finite is checked in pydantic-core: a Python validator per number costs ~1 µs per trade.
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN)]
Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Volume = Annotated[float, Field(ge=0, allow_inf_nan=False)]
EpochMs = Annotated[int, Field(ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS)]


class TradeError(ValueError):
    """A payload that is not a valid trade; it can never succeed, so it belongs in a DLQ."""

    code = "InvalidTrade"


class ReceiveTimeMissingError(TradeError):
    """A valid trade whose record has no ``rt`` (another producer's plain Finnhub trade), decoded
    without a receive time to give it: ``received_at(arrival_ms)`` is the trade.

    Raised rather than asking every caller for the arrival time up front, so that a consumer
    works the arrival out only for the records that need it, and the edge's records (the hot
    path) decode at exactly the cost they always did.
    """

    def __init__(self, error: ValueError, fields: dict[str, Any]) -> None:
        super().__init__(error)
        self._error = error
        self._fields = fields  # the trade's validated fields and its id

    def __str__(self) -> str:
        # Formatted only when asked: a consumer that gives the receive time never asks.
        return _short_error(self._error)

    def received_at(self, received_ms: int) -> Trade:
        """The trade with ``rt`` = ``received_ms``; TradeError if that is no epoch ms in range."""
        return _stamped({**self._fields, "rt": received_ms})


class RawTrade(BaseModel):
    """A trade as Finnhub sends it inside a ``{"type": "trade", "data": [...]}`` frame."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    s: Symbol
    p: Price
    v: Volume
    t: EpochMs
    c: tuple[str, ...] | None = None


class TradeFields(TypedDict):
    """A validated raw trade as a plain dict (what the ingest API validates bodies into)."""

    s: str
    p: float
    v: float
    t: int
    c: NotRequired[tuple[str, ...] | None]


class Trade(RawTrade):
    """The record on the stream: a raw trade stamped at the edge with ``id`` and ``rt``."""

    id: str = Field(min_length=16, max_length=64)
    rt: int = Field(ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS, description="edge receive time, epoch ms")

    def to_record(self) -> bytes:
        """Serialise compactly; field order is stable, so identical trades give identical bytes."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_record(cls, data: bytes | str, received_ms: int | None = None) -> Trade:
        """Decode one Kinesis record, raising TradeError for anything that is not a valid trade.

        A record without ``id`` gets the edge's (``stamp([raw])``'s, occurrence 0); one without
        ``rt`` gets ``received_ms``, the record's arrival time, or, when that is not given,
        raises ReceiveTimeMissingError, whose ``received_at`` gives it later. The TradeError of
        any other record is what it always was: its reason, and pydantic's ValidationError as
        its ``__cause__``.
        """
        try:
            return cls.model_validate_json(data)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            error = exc
        # Off the hot path from here: records that are not the edge's, and poison.
        fields = _unstamped_fields(data, error)
        if fields is None:
            raise TradeError(_short_error(error)) from error
        if "rt" in fields:
            return _stamped(fields)
        if received_ms is None:
            raise ReceiveTimeMissingError(error, fields) from error
        return _stamped({**fields, "rt": received_ms})


class _UnstampedRecord(RawTrade):
    """A record that may lack the edge's stamp: ``id`` and ``rt`` as Trade checks them when they
    are there. The defaults (never validated, and no valid value) mean "absent"; an explicit
    ``null`` is refused, as it always was."""

    id: str = Field("", min_length=16, max_length=64)
    rt: int = Field(0, ge=MIN_EPOCH_MS, le=MAX_EPOCH_MS)


_STAMP = frozenset({("id",), ("rt",)})


def _unstamped_fields(data: bytes | str, error: ValueError) -> dict[str, Any] | None:
    """A record's trade fields and id when its only faults were a missing ``id`` and/or ``rt``
    (``rt`` included when present); None for anything else, i.e. poison."""
    if not isinstance(error, ValidationError) or error.error_count() > 2:
        return None  # a missing id and rt are two errors; a ping frame, say, has six
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    if not all(e["type"] == "missing" and e["loc"] in _STAMP for e in errors):
        return None
    try:
        # Trade failed for the missing stamp alone, and _UnstampedRecord differs from Trade only
        # in those two defaults, so this succeeds; the guard is for the impossible.
        record = _UnstampedRecord.model_validate_json(data)
    except ValueError:  # pragma: no cover
        return None
    s, p, v, t, c = record.s, record.p, record.v, record.t, record.c
    fields: dict[str, Any] = {
        "s": s,
        "p": p,
        "v": v,
        "t": t,
        "c": c,
        "id": record.id or _id_of((s, p, v, t, c), 0),
    }
    if record.rt:
        fields["rt"] = record.rt
    return fields


def _stamped(fields: dict[str, Any]) -> Trade:
    # Validating the dict costs less than model_construct, and checks a receive time from outside.
    try:
        return Trade.model_validate(fields)
    except ValueError as exc:
        raise TradeError(_short_error(exc)) from exc


# A trade's fields in record order: s, p, v, t, c.
_Fields = tuple[str, float, float, int, tuple[str, ...] | None]


def _id_of(fields: _Fields, occurrence: int) -> str:
    """The deterministic id of a trade.

    ``occurrence`` tells apart trades that are identical in every field inside one frame (two fills
    of the same size at the same price in the same millisecond are two trades). The same frame
    replayed gives the same occurrences, hence the same ids; a duplicate re-sent in a later frame
    gets occurrence 0 again, hence collapses onto the first one downstream.
    """
    s, p, v, t, c = fields
    return _hashed(s, repr(p), repr(v), t, c, occurrence)


def _hashed(
    s: str, p_repr: str, v_repr: str, t: int, c: tuple[str, ...] | None, occurrence: int
) -> str:
    conditions = ",".join(c or ())
    key = f"{s}|{p_repr}|{v_repr}|{t}|{conditions}|{occurrence}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stamp(raws: Iterable[RawTrade], received_ms: int | None = None) -> list[Trade]:
    """Turn the raw trades of one frame (or request) into stream records with ids."""
    received = now_ms() if received_ms is None else received_ms
    # The raw trades are validated already, and id and rt are ours: constructing without
    # validating again halves the cost.
    return [
        Trade.model_construct(s=s, p=p, v=v, t=t, c=c, id=record_id, rt=received)
        for record_id, (s, p, v, t, c) in _identified((r.s, r.p, r.v, r.t, r.c) for r in raws)
    ]


# One Kinesis record ready for PutRecords: (id, partition key, data). A plain tuple: building a
# NamedTuple costs ~1 µs more, 500 times per ingest request.
RecordToPut = tuple[str, str, bytes]


def stream_records(
    trades: Iterable[TradeFields], received_ms: int | None = None
) -> list[RecordToPut]:
    """What ``stamp()`` then ``to_record()`` give for the same trades, without building models:
    the same ids and bytes for a sixth of the CPU, which counts when a 500-trade ingest request
    holds the event loop for all of it (bench/ingest.py)."""
    received = now_ms() if received_ms is None else received_ms
    seen: dict[_Fields, int] = {}
    quoted: dict[Any, str] = {}  # JSON of the symbols and condition lists met so far
    records = []
    for trade in trades:
        fields = (trade["s"], trade["p"], trade["v"], trade["t"], trade.get("c"))
        occurrence = seen.get(fields, 0)
        seen[fields] = occurrence + 1
        s, p, v, t, c = fields
        p_repr, v_repr = repr(p), repr(v)
        record_id = _hashed(s, p_repr, v_repr, t, c, occurrence)
        # The record's JSON, laid out as Trade.to_record() writes it: same field order, c left
        # out when None (exclude_none), strings quoted by the same serialiser (pydantic-core), and
        # floats as Python writes them where that is also what pydantic-core writes.
        s_json = quoted.get(s)
        if s_json is None:
            s_json = quoted[s] = to_json(s).decode()
        c_json = ""
        if c is not None:
            c_json = quoted.get(c) or quoted.setdefault(c, ',"c":' + to_json(c).decode())
        if type(p) is not float or p < _REPR_AGREES_FROM:
            p_repr = _json_number(p)
        if type(v) is not float or 0 < v < _REPR_AGREES_FROM:
            v_repr = _json_number(v)
        data = (
            f'{{"s":{s_json},"p":{p_repr},"v":{v_repr},"t":{t}{c_json},'
            f'"id":"{record_id}","rt":{received}}}'
        )
        records.append((record_id, s, data.encode()))
    return records


# repr() of a float and pydantic-core's JSON of it agree from here up (and at 0); below, Python
# writes 1e-05 where pydantic-core writes 0.00001.
_REPR_AGREES_FROM = 1e-4


def _json_number(value: float) -> str:
    # float(): a strict validator may keep an int; the record's numbers are floats, as
    # validating a Trade would have made them.
    return to_json(float(value)).decode()


def _identified(trades: Iterable[_Fields]) -> Iterator[tuple[str, _Fields]]:
    """Each trade's id and its fields, numbers as the record holds them."""
    # Keyed on the field values, not the models: hashing a frozen model costs several times more.
    seen: dict[_Fields, int] = {}
    for fields in trades:
        occurrence = seen.get(fields, 0)
        seen[fields] = occurrence + 1
        s, p, v, t, c = fields
        # float(): a strict validator may keep an int price; the record's numbers are floats, as
        # validating a Trade would have made them. The id is derived before, as it always was.
        yield _id_of(fields, occurrence), (s, float(p), float(v), t, c)


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
