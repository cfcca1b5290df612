"""The endpoints: POST /v1/trades, GET /v1/trades and /v1/trades/latest (reads of the hot store),
and /healthz, /readyz, /metrics for operations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic_core import to_json
from starlette.requests import ClientDisconnect

from tradestream.trade import SYMBOL_PATTERN, now_ms, stream_records

from .batcher import BatcherClosedError, BufferFullError
from .deps import Caller, Reader, Readiness, Sink, State, ingest_state
from .errors import InvalidQueryError, MalformedBodyError, NoTradesError, UnavailableError
from .models import Accepted, InvalidTrades, LatestTrade, Problem, TradesPage, Unavailable
from .models import Readiness as ReadinessBody
from .parse import JSON, body_format, read_limited
from .reads import DEFAULT_PAGE, MAX_CURSOR_CHARS, MAX_PAGE, decode_cursor, time_range

router = APIRouter()

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}

TRADES_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Kinesis accepted every trade of the request."},
    400: {"model": Problem, "description": "The body is not JSON."},
    401: {"model": Problem, "description": "Missing or unknown X-API-Key."},
    413: {
        "model": Problem,
        "description": "The body exceeds MAX_BODY_BYTES or holds more than "
        "MAX_TRADES_PER_REQUEST trades; split it.",
    },
    415: {"model": Problem, "description": "Not application/json or application/x-ndjson."},
    422: {"model": InvalidTrades, "description": "Invalid trades; nothing was accepted."},
    429: {"model": Problem, "description": "Rate limit of the key.", "headers": _RETRY_AFTER},
    503: {
        "model": Unavailable,
        "description": "Kinesis did not accept every trade within the retry budget, or the "
        "service is saturated or stopping; `ids` lists the trades that are durable.",
        "headers": _RETRY_AFTER,
    },
}


@router.post(
    "/v1/trades",
    status_code=202,
    response_model=Accepted,
    responses=TRADES_RESPONSES,
    operation_id="putTrades",
    summary="Put trades into the stream",
    description="One trade object, a JSON array of trades, or NDJSON (one trade per line). "
    "All-or-nothing validation; 202 only once Kinesis accepted every trade. Ids are "
    "deterministic: resending a request after a 503 or a timeout stores nothing twice.",
)
async def post_trades(request: Request, caller: Caller, sink: Sink) -> Response:
    state = ingest_state(request)
    settings = state.settings
    fmt = body_format(request.headers.get("content-type"))
    try:
        body = await read_limited(
            request.headers.get("content-length"), request.stream(), settings.max_body_bytes
        )
    except ClientDisconnect:
        raise MalformedBodyError("the connection closed before the body ended") from None
    received = now_ms()
    latest = received + int(settings.max_future_skew_seconds * 1000)
    trades = state.parser.parse(body, fmt, max_t=latest)
    records = stream_records(trades, received)
    ids = [record_id for record_id, _, _ in records]
    try:
        outcome = await sink.put(records)
    except (BufferFullError, BatcherClosedError) as exc:
        raise UnavailableError(
            str(exc),
            accepted=[],
            not_accepted=ids,
            retry_after=settings.retry_after_seconds,
            code=exc.code,
        ) from None
    state.metrics.trades_received.inc(len(records))
    if not outcome.complete:
        raise UnavailableError(
            f"Kinesis did not accept {len(outcome.not_accepted)} of {len(ids)} trades within "
            "the retry budget; resend them (ids make resending safe)",
            accepted=outcome.accepted,
            not_accepted=outcome.not_accepted,
            retry_after=settings.retry_after_seconds,
        )
    body_out = Accepted(accepted=len(ids), ids=ids).model_dump_json()
    return Response(body_out, status_code=202, media_type="application/json")


READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: TRADES_RESPONSES[401],
    422: {"model": Problem, "description": "Bad symbol, range, limit or cursor."},
    429: TRADES_RESPONSES[429],
    503: {
        "model": Problem,
        "description": "The hot store did not answer; retry later.",
        "headers": _RETRY_AFTER,
    },
}

# The same symbol rule as the trades POSTed (tradestream.trade).
SymbolParam = Annotated[str, Query(pattern=SYMBOL_PATTERN, description="e.g. AAPL")]


def only_query(*names: str) -> Any:
    """Refuse query parameters the route does not take, as POST refuses unknown fields: a
    misspelt ``form=`` would otherwise be ignored and the read silently widened to all time."""

    async def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(names))
        if unknown:
            raise InvalidQueryError(
                f"unknown query parameters {unknown}: this endpoint takes {', '.join(names)}"
            )

    return Depends(check)


_INSTANT = (
    "Inclusive. Epoch milliseconds, or an ISO 8601 / RFC 3339 time (UTC without an offset); "
    "times outside 1970..2286 are clamped to that end."
)
# Read as text (an integer or a time; reads.epoch_ms decides), documented as what it accepts.
InstantParam = Query(
    description=_INSTANT,
    json_schema_extra={"anyOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]},
)


@router.get(
    "/v1/trades",
    response_model=TradesPage,
    responses=READ_RESPONSES,
    operation_id="getTrades",
    dependencies=[only_query("symbol", "from", "to", "limit", "cursor")],
    summary="Read a symbol's trades from the hot store",
    description="A DynamoDB Query on the symbol's partition, its sort key (time, then id) "
    "between from and to: time order, oldest first. While `cursor` is not null, more pages "
    "follow: pass it back with the same symbol, from and to.",
)
async def get_trades(
    caller: Caller,
    reader: Reader,
    symbol: SymbolParam,
    from_: Annotated[str | None, InstantParam, Query(alias="from")] = None,
    to: Annotated[str | None, InstantParam] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Response:
    window = time_range(from_, to)
    start = decode_cursor(cursor, symbol, window) if cursor else None
    page = await reader.page(symbol, window, limit, start)
    return Response(to_json(page.body()), media_type=JSON)


@router.get(
    "/v1/trades/latest",
    response_model=LatestTrade,
    responses={
        **READ_RESPONSES,
        404: {"model": Problem, "description": "The hot store holds no trade of the symbol."},
    },
    operation_id="getLatestTrade",
    dependencies=[only_query("symbol")],
    summary="A symbol's newest trade",
    description="One DynamoDB Query, newest first with Limit=1: one item read however many "
    "trades the symbol has.",
)
async def get_latest_trade(caller: Caller, reader: Reader, symbol: SymbolParam) -> Response:
    trade = await reader.latest(symbol)
    if trade is None:
        raise NoTradesError(f"no trade of {symbol} in the hot store (yet)")
    return Response(to_json({"trade": trade}), media_type=JSON)


@router.get(
    "/healthz",
    operation_id="health",
    response_model=dict[str, str],
    summary="The process is alive",
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readiness",
    response_model=ReadinessBody,
    responses={503: {"model": ReadinessBody, "description": "Not ready."}},
    summary="The stream is reachable and takes writes",
)
async def readyz(probe: Readiness, sink: Sink, state: State) -> Response:
    if sink.closing:
        result = ReadinessBody(
            ready=False, stream=state.settings.stream_name, status=None, reason="ShuttingDown"
        )
    else:
        result = await probe.check()
    return Response(
        result.model_dump_json(),
        status_code=200 if result.ready else 503,
        media_type="application/json",
    )


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(state: State) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
