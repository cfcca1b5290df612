"""Reading the hot store: one DynamoDB Query per page (never a Scan), and the opaque cursor.

The key design is DESIGN.md's "DynamoDB", written by lambdas/hotstore/items.py (which this
deployable may not import; tests/unit/test_ingest_reads.py checks the two agree): partition key
``s``, sort key ``sk = <t as 13 digits>#<id>``. A symbol's trades from ``a`` to ``b`` ms inclusive
are then ``sk BETWEEN "<a>" AND "<b>~"``: ``"~"`` sorts after ``"#"`` and after every character of
an id, so every trade of millisecond ``b`` is inside, whatever its id.

The cursor is DynamoDB's LastEvaluatedKey as urlsafe base64 of compact JSON. Opaque to clients
(the README says so), but not secret: it names a symbol and a trade time the caller may read
anyway, so it is validated (shape, symbol, range) rather than signed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .errors import InvalidQueryError, StoreUnavailableError

DEFAULT_PAGE = 100
MAX_PAGE = 1000
# The largest time a 13-digit sort key can hold; "from"/"to" outside 0..this would break the order.
MAX_KEY_MS = 10**13 - 1
MAX_CURSOR_CHARS = 512

_INTEGER = re.compile(r"^-?[0-9]+$")
_SORT_KEY = re.compile(r"^[0-9]{13}#[!-~]{1,64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# What a page reads of each item: the key and the record contract's fields, not the TTL and
# bookkeeping. Names go through placeholders so no field can clash with a reserved word.
_NAMES = {f"#{name}": name for name in ("s", "sk", "p", "v", "t", "c", "id", "rt")}
_PROJECTION = ", ".join(_NAMES)

Key = dict[str, Any]  # a DynamoDB key in AttributeValue form: {"s": {"S": ...}, "sk": {"S": ...}}


@dataclass(frozen=True)
class TimeRange:
    """Trade times ``from_ms`` .. ``to_ms``, both inclusive, as bounds of the sort key."""

    from_ms: int
    to_ms: int

    @property
    def lowest_key(self) -> str:
        return f"{self.from_ms:013d}"

    @property
    def highest_key(self) -> str:
        return f"{self.to_ms:013d}~"

    def holds(self, sort_key: str) -> bool:
        return self.lowest_key <= sort_key <= self.highest_key


def epoch_ms(value: str | None, *, default: int, name: str) -> int:
    """``from``/``to`` as epoch ms: an integer is ms already; otherwise ISO 8601 / RFC 3339 (UTC
    when no offset is given, as Finnhub's times are). A time before 1970 or past what a 13-digit
    key holds is clamped to that end: "from 1900" means from the first trade, not a bad request."""
    if value is None:
        return default
    text = value.strip()
    if _INTEGER.match(text):
        # Compared as text first: int() of a 5,000-digit string raises (Python's digit limit).
        if text.startswith("-"):
            return 0
        ms = int(text) if len(text) <= 13 else MAX_KEY_MS + 1
    else:
        try:
            # RFC 3339 allows "t" and "z"; fromisoformat takes upper case only.
            instant = datetime.fromisoformat(text.upper())
        except ValueError:
            raise InvalidQueryError(
                f"{name}: give epoch milliseconds or an ISO 8601 time, e.g. 2024-06-10T14:30:00Z"
            ) from None
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)
        ms = (instant - _EPOCH) // _ONE_MS
    return min(max(ms, 0), MAX_KEY_MS)


def time_range(from_: str | None, to: str | None) -> TimeRange:
    window = TimeRange(
        epoch_ms(from_, default=0, name="from"), epoch_ms(to, default=MAX_KEY_MS, name="to")
    )
    if window.from_ms > window.to_ms:
        raise InvalidQueryError(
            f"from ({window.from_ms}) is after to ({window.to_ms}); swap them or widen the range"
        )
    return window


def encode_cursor(key: Key) -> str:
    plain = {"s": key["s"]["S"], "sk": key["sk"]["S"]}
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, symbol: str, window: TimeRange) -> Key:
    """The ExclusiveStartKey a cursor stands for; 422 unless it came from a page of this query.

    DynamoDB itself would refuse a start key outside the key condition with a 400; checking here
    turns that, and any tampering, into a 422 that says what to do."""
    redo = "start again without a cursor, or pass the one the last page returned unchanged"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        plain = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidQueryError(f"cursor: not a cursor this API issued; {redo}") from None
    if (
        not isinstance(plain, dict)
        or set(plain) != {"s", "sk"}
        or not all(isinstance(value, str) for value in plain.values())
        or not _SORT_KEY.match(plain["sk"])
    ):
        raise InvalidQueryError(f"cursor: not a cursor this API issued; {redo}")
    if plain["s"] != symbol:
        raise InvalidQueryError(f"cursor: it belongs to another symbol's pages; {redo}")
    if not window.holds(plain["sk"]):
        raise InvalidQueryError(
            f"cursor: it lies outside from..to; send the same from and to as the request it "
            f"came from, or {redo}"
        )
    return {"s": {"S": plain["s"]}, "sk": {"S": plain["sk"]}}


def stored_trade(item: dict[str, Any]) -> dict[str, Any]:
    """An item back in the record contract's shape, numbers as numbers (DynamoDB sends strings)."""
    trade: dict[str, Any] = {
        "s": item["s"]["S"],
        "p": float(item["p"]["N"]),
        "v": float(item["v"]["N"]),
        "t": int(item["t"]["N"]),
    }
    if "c" in item:
        trade["c"] = [code["S"] for code in item["c"]["L"]]
    trade["id"] = item["id"]["S"]
    trade["rt"] = int(item["rt"]["N"])
    return trade


@dataclass
class Page:
    trades: list[dict[str, Any]]
    cursor: str | None

    def body(self) -> dict[str, Any]:
        return {"trades": self.trades, "cursor": self.cursor}


class TradeReader:
    """Queries one table through one aiobotocore client, which the app's lifespan owns."""

    def __init__(self, client: Any, table: str, *, retry_after: int) -> None:
        self._client = client
        self.table = table
        self._retry_after = retry_after

    async def page(
        self, symbol: str, window: TimeRange, limit: int, start: Key | None = None
    ) -> Page:
        """Up to ``limit`` trades in time order, and the cursor of the next page.

        One more item than asked is read: when it exists the page is not the last and the cursor
        is the key of the page's last trade; when it does not, the cursor is null. DynamoDB's own
        LastEvaluatedKey would also be set on a last page that is exactly full, which would cost
        the client an extra, empty page."""
        response = await self._query(
            KeyConditionExpression="#s = :s AND #sk BETWEEN :lowest AND :highest",
            ExpressionAttributeValues={
                ":s": {"S": symbol},
                ":lowest": {"S": window.lowest_key},
                ":highest": {"S": window.highest_key},
            },
            ScanIndexForward=True,
            Limit=limit + 1,
            **({"ExclusiveStartKey": start} if start else {}),
        )
        items: list[dict[str, Any]] = response.get("Items", [])
        if len(items) > limit:
            items = items[:limit]
            cursor: str | None = encode_cursor({"s": items[-1]["s"], "sk": items[-1]["sk"]})
        elif "LastEvaluatedKey" in response:
            # Cut short by DynamoDB's 1 MB per Query: more may follow from where it stopped.
            cursor = encode_cursor(response["LastEvaluatedKey"])
        else:
            cursor = None
        return Page([stored_trade(item) for item in items], cursor)

    async def latest(self, symbol: str) -> dict[str, Any] | None:
        """The symbol's newest trade: one Query, newest first, Limit 1 (one item read, 0.5 RCU)."""
        response = await self._query(
            KeyConditionExpression="#s = :s",
            ExpressionAttributeValues={":s": {"S": symbol}},
            ScanIndexForward=False,
            Limit=1,
        )
        items = response.get("Items", [])
        return stored_trade(items[0]) if items else None

    async def _query(self, **query: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = await self._client.query(
                TableName=self.table,
                ProjectionExpression=_PROJECTION,
                ExpressionAttributeNames=_NAMES,
                **query,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise StoreUnavailableError(
                f"the hot store did not answer the query ({code}); retry later",
                retry_after=self._retry_after,
            ) from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"the hot store could not be reached ({type(exc).__name__}); retry later",
                retry_after=self._retry_after,
            ) from exc
        return response
