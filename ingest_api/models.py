"""The API's request and response bodies.

``TradeIn`` is the core trade with the rules an HTTP client can be held to: unknown fields
are refused (a misspelt field is a client bug, not something to drop silently; ``id`` and ``rt``
are assigned by the service), JSON types are strict (no ``"1.5"`` for a price, no ``true`` for a
volume; but 1.7e12 is the integer JSON Schema says it is), condition codes are short and few (so
a record stays far below Kinesis's 1 MiB), and a trade time may not lie in the future beyond a
clock-skew allowance. It is a TypedDict with the field rules of ``RawTrade``: validating 500 of
them into plain dicts takes half the CPU of building models, and the records are made from dicts.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationInfo,
    with_config,
)
from typing_extensions import TypedDict

from tradestream.trade import EpochMs, Price, Symbol, Volume

MAX_CONDITIONS = 32
ConditionCode = Annotated[str, StringConstraints(min_length=1, max_length=16)]

# The context key parse.py passes so "the future" is one instant for a whole request.
MAX_T_CONTEXT_KEY = "max_t"

_FIELD_DOCS = {
    "s": "Symbol, e.g. AAPL, BINANCE:BTCUSDT, OANDA:EUR_USD.",
    "p": "Last price; finite and greater than 0.",
    "v": "Volume; finite and at least 0 (0 is a price-only update).",
    "t": "Trade time in epoch milliseconds (UTC), not in the future beyond the allowed skew.",
    "c": "Trade condition codes, as Finnhub sends them.",
}


def _document(schema: dict[str, Any]) -> None:
    for name, text in _FIELD_DOCS.items():
        schema["properties"][name]["description"] = text
    schema["examples"] = [{"s": "AAPL", "p": 189.97, "v": 100, "t": 1_718_000_000_000, "c": ["1"]}]


def _integral_and_not_in_the_future(value: object, info: ValidationInfo) -> object:
    # One Python validator for both rules: each costs ~0.5 µs per trade, 500 times a request.
    # JSON has one number type: 1718000000000.0 is the integer JSON Schema says it is.
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is int:
        context = info.context if isinstance(info.context, dict) else {}
        latest = context.get(MAX_T_CONTEXT_KEY)
        if latest is not None and value > latest:
            raise ValueError("trade time lies in the future beyond the allowed clock skew")
    return value


@with_config(
    ConfigDict(
        extra="forbid",
        strict=True,
        title="Trade",
        json_schema_extra=_document,
    )
)
class TradeIn(TypedDict):
    """One trade as a client posts it."""

    s: Symbol
    p: Price
    v: Volume
    t: Annotated[EpochMs, BeforeValidator(_integral_and_not_in_the_future)]
    c: NotRequired[
        Annotated[tuple[ConditionCode, ...] | None, Field(default=None, max_length=MAX_CONDITIONS)]
    ]


# Compiled once; TypedDicts have no methods of their own to validate or describe them.
TRADE_ADAPTER: TypeAdapter[TradeIn] = TypeAdapter(TradeIn)


class Accepted(BaseModel):
    """Kinesis has durably accepted every trade of the request."""

    accepted: int = Field(description="number of trades accepted")
    ids: list[str] = Field(description="the trades' deterministic ids, in request order")


class Problem(BaseModel):
    """An error; ``code`` is stable and machine-readable, ``detail`` says what to do."""

    code: str
    detail: str


class TradeProblem(BaseModel):
    index: int = Field(description="0-based position of the trade in the request")
    field: str | None = Field(description="the offending field; null when the item itself is bad")
    message: str
    type: str = Field(description="pydantic's error type, e.g. greater_than, missing")


class InvalidTrades(Problem):
    """Some trades are invalid; nothing of the request was put."""

    errors: list[TradeProblem]


class Unavailable(Problem):
    """Kinesis did not accept every trade in time, or the service is saturated or stopping.

    Trades listed in ``ids`` are durable. Resending the whole request is safe: ids are
    deterministic, so the sinks store each trade once.
    """

    accepted: int
    ids: list[str] = Field(description="ids of the trades Kinesis accepted, in request order")
    not_accepted: list[str] = Field(description="ids of the trades to send again")


class Readiness(BaseModel):
    ready: bool
    stream: str
    status: str | None = Field(description="the stream's StreamStatus when it could be read")
    reason: str | None = None


class StoredTrade(BaseModel):
    """A trade as the hot store holds it: the record contract's fields."""

    s: str = Field(description=_FIELD_DOCS["s"])
    p: float = Field(description=_FIELD_DOCS["p"])
    v: float = Field(description=_FIELD_DOCS["v"])
    t: int = Field(description="Trade time in epoch milliseconds (UTC).")
    c: list[str] | None = Field(default=None, description="Condition codes; absent when none.")
    id: str = Field(description="The trade's deterministic id.")
    rt: int = Field(description="When the edge received the trade, epoch ms.")


class TradesPage(BaseModel):
    """Trades in time order (oldest first)."""

    trades: list[StoredTrade]
    cursor: str | None = Field(
        description="Opaque; pass it as `cursor` (with the same symbol, from and to) for the "
        "next page. null on the last page."
    )


class LatestTrade(BaseModel):
    trade: StoredTrade
