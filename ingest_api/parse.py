"""Request bodies to validated trades: size limit while reading, then all-or-nothing validation.

Three body shapes: one JSON trade object, a JSON array of trades (``application/json``), or one
trade per line (``application/x-ndjson``; blank lines are skipped and do not count as trades).
A body that is not JSON at all is a 400; any invalid trade makes the whole request a 422 that lists
every bad trade's index and field; more than the allowed trades per request is a 413, like a body
over the byte limit, because both say "split the request" rather than "fix a trade".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from enum import Enum
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from .errors import (
    InvalidTradesError,
    MalformedBodyError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from .models import MAX_T_CONTEXT_KEY, TRADE_ADAPTER, TradeIn, TradeProblem

JSON = "application/json"
NDJSON = "application/x-ndjson"


class BodyFormat(Enum):
    JSON = "json"
    NDJSON = "ndjson"


_NDJSON_TYPES = {NDJSON, "application/ndjson", "application/jsonl"}


def body_format(content_type: str | None) -> BodyFormat:
    media, *params = (content_type or "").lower().split(";")
    media = media.strip()
    for param in params:
        name, _, value = param.strip().partition("=")
        if name == "charset" and value.strip('"') not in ("utf-8", "utf8"):
            raise UnsupportedMediaTypeError("trade bodies must be UTF-8")
    if media == JSON or (media.startswith("application/") and media.endswith("+json")):
        return BodyFormat.JSON
    if media in _NDJSON_TYPES:
        return BodyFormat.NDJSON
    raise UnsupportedMediaTypeError(f"send Content-Type: {JSON} or {NDJSON}")


async def read_limited(
    declared_length: str | None, chunks: AsyncIterator[bytes], limit: int
) -> bytes:
    """Read the body, stopping as soon as it exceeds ``limit``.

    Content-Length is checked first to refuse honest large uploads without reading them, but it is
    not trusted: chunked bodies have none and a client may lie, so the count while reading decides.
    """
    too_large = PayloadTooLargeError(f"the body exceeds {limit} bytes; split it into requests")
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


class TradeParser:
    """Validates bodies against ``TradeIn``; one per app, so the adapter is compiled once."""

    def __init__(self, max_trades: int) -> None:
        self.max_trades = max_trades
        self._one = TRADE_ADAPTER
        self._many = TypeAdapter(Annotated[list[TradeIn], Field(max_length=max_trades)])

    def parse(self, body: bytes, fmt: BodyFormat, *, max_t: int) -> list[TradeIn]:
        context = {MAX_T_CONTEXT_KEY: max_t}
        if fmt is BodyFormat.NDJSON:
            trades = self._parse_lines(body, context)
        else:
            trades = self._parse_json(body, context)
        if not trades:
            raise InvalidTradesError("the request holds no trades", [])
        return trades

    def _too_many(self, count: int | None = None) -> PayloadTooLargeError:
        got = f" (got {count})" if count is not None else ""
        return PayloadTooLargeError(
            f"at most {self.max_trades} trades per request{got}; split it into requests"
        )

    def _parse_json(self, body: bytes, context: dict[str, Any]) -> list[TradeIn]:
        first = body.lstrip()[:1]
        if first not in (b"[", b"{"):
            raise MalformedBodyError("the body must be a trade object or a JSON array of trades")
        try:
            if first == b"{":
                return [self._one.validate_json(body, context=context)]
            return self._many.validate_json(body, context=context)
        except ValidationError as exc:
            whole = [e for e in exc.errors() if not e["loc"]]
            if any(e["type"] == "json_invalid" for e in whole):
                raise MalformedBodyError(f"the body is not valid JSON: {whole[0]['msg']}") from None
            if any(e["type"] == "too_long" for e in whole):
                raise self._too_many() from None
            offset = 0 if first == b"{" else 1  # a single object has no index in its locations
            problems = [_problem(e, offset) for e in exc.errors()]
            raise _invalid(problems) from None

    def _parse_lines(self, body: bytes, context: dict[str, Any]) -> list[TradeIn]:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > self.max_trades:
            raise self._too_many(len(lines))
        trades: list[TradeIn] = []
        problems: list[TradeProblem] = []
        for index, line in enumerate(lines):
            try:
                trades.append(self._one.validate_json(line, context=context))
            except ValidationError as exc:
                problems += [_problem(e, 0, index) for e in exc.errors()]
        if problems:
            raise _invalid(problems)
        return trades


def _problem(error: Any, offset: int, index: int | None = None) -> TradeProblem:
    loc = tuple(error["loc"])
    if index is None:
        index = int(loc[0]) if offset and loc and isinstance(loc[0], int) else 0
    field = ".".join(str(part) for part in loc[offset:]) or None
    return TradeProblem(index=index, field=field, message=error["msg"], type=error["type"])


def _invalid(problems: Sequence[TradeProblem]) -> InvalidTradesError:
    bad = len({p.index for p in problems})
    return InvalidTradesError(
        f"{bad} trade(s) invalid; nothing was accepted. Fix them and resend the request", problems
    )
