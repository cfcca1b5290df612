"""A trade as a DynamoDB item of ``stock_trades``, in the low-level client's AttributeValue form.

Key design (DESIGN.md, "DynamoDB"): ``s`` (symbol) is the partition key; ``sk`` is the trade time
in ms zero-padded to 13 digits, ``#``, then the trade id. Time first, so a symbol's trades range
by time (``sk BETWEEN "<from ms>" AND "<to ms>~"``); the id second, so same-millisecond trades are
distinct items and a replayed trade (same deterministic id) overwrites itself.
"""

from __future__ import annotations

from decimal import Decimal, DecimalException
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from lambdas.hotstore.records import UNSTORABLE_TRADE, PoisonRecordError
from tradestream.trade import Trade

Item = dict[str, Any]  # attribute name -> AttributeValue ({"S": ...}, {"N": ...}, ...)
Key = tuple[str, str]  # (s, sk)

SECONDS_PER_DAY = 86_400
MAX_ITEM_BYTES = 400 * 1024
# Upper bound of a number's stored size (DynamoDB: about one byte per two significant digits,
# plus one, at most 21 bytes); overestimating only makes the size check stricter.
_MAX_NUMBER_BYTES = 21

_serializer = TypeSerializer()


def sort_key(trade: Trade) -> str:
    # Trade times lie in [2000, 2100), always 13 digits; the padding keeps string order = time
    # order should that range ever widen.
    return f"{trade.t:013d}#{trade.id}"


def expires_at(trade: Trade, ttl_days: int) -> int:
    """TTL attribute: epoch seconds, counted from the trade time so a replay keeps the same TTL."""
    return trade.t // 1000 + ttl_days * SECONDS_PER_DAY


def to_item(trade: Trade, *, ttl_days: int, ingested_at_ms: int) -> Item:
    """The item for a trade, or PoisonRecordError when DynamoDB could never store it."""
    attributes: dict[str, Any] = {
        "s": trade.s,
        "sk": sort_key(trade),
        # str(float) is the shortest repr that round-trips, i.e. the number as the edge sent it;
        # Decimal(float) would store the binary expansion (187.22999999999998976...).
        "p": Decimal(str(trade.p)),
        "v": Decimal(str(trade.v)),
        "t": trade.t,
        "id": trade.id,
        "rt": trade.rt,
        "ingested_at": ingested_at_ms,
        "expires_at": expires_at(trade, ttl_days),
    }
    if trade.c is not None:
        attributes["c"] = list(trade.c)
    try:
        item = {name: _serializer.serialize(value) for name, value in attributes.items()}
    except DecimalException as exc:
        # Finite floats outside DynamoDB's number range (1E-130 .. 9.99E+125), e.g. p=1e-300.
        raise PoisonRecordError(
            UNSTORABLE_TRADE, f"price or volume outside DynamoDB's number range: {exc!r}"
        ) from exc
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        # One oversized item would make DynamoDB refuse the whole BatchWriteItem call.
        raise PoisonRecordError(
            UNSTORABLE_TRADE,
            f"item is about {size} bytes; DynamoDB stores {MAX_ITEM_BYTES} at most",
        )
    return item


def key_of(item: Item) -> Key:
    return item["s"]["S"], item["sk"]["S"]


def item_size(item: Item) -> int:
    """An upper bound of the item's size as DynamoDB counts it (names plus values)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return _MAX_NUMBER_BYTES
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in inner)
    return len(str(inner).encode())  # types this module never writes; a rough bound is enough
