"""GET /v1/trades and /v1/trades/latest under a real uvicorn server, reading a moto server's
table that the hotstore Lambda handler itself filled (so the reads meet the writer's real items)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ingest_api import IngestSettings, RunningServer, start_in_thread
from lambdas.hotstore import handler as hotstore_handler
from tests.support.hotstore import Resources, context, trades_event
from tradestream.trade import RawTrade, Trade, stamp

KEY = "reads-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
T0 = 1_718_000_000_000
N = 1_200  # AAPL trades: two per millisecond, over 600 ms


def _market() -> list[Trade]:
    """N AAPL trades, two in every millisecond (different prices, so different ids), and some
    MSFT trades in the same milliseconds, which an AAPL read must never return."""
    aapl = [RawTrade(s="AAPL", p=100 + i / 100, v=i % 7, t=T0 + i // 2, c=("1",)) for i in range(N)]
    msft = [RawTrade(s="MSFT", p=400 + i / 100, v=1, t=T0 + i) for i in range(50)]
    return stamp(aapl + msft, received_ms=T0 + 5_000)


def _in_time_order(trades: list[Trade], symbol: str = "AAPL") -> list[Trade]:
    # The table's order: time, then id (the sort key is "<t>#<id>").
    return sorted((t for t in trades if t.s == symbol), key=lambda t: (t.t, t.id))


@pytest.fixture
def market(resources: Resources) -> list[Trade]:
    trades = _market()
    for start in range(0, len(trades), 500):
        answer = hotstore_handler.handler(trades_event(trades[start : start + 500]), context())
        assert answer == {"batchItemFailures": []}
    return trades


def _serve(table: str, **overrides: Any) -> RunningServer:
    return start_in_thread(
        IngestSettings(table_name=table, ingest_api_keys=KEY, **overrides),
    )


@pytest.fixture
def server(resources: Resources) -> Iterator[RunningServer]:
    with _serve(resources.table) as running:
        yield running


def _get(server: RunningServer, path: str = "/v1/trades", **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=HEADERS, timeout=10)


def _all_pages(server: RunningServer, **params: Any) -> list[dict[str, Any]]:
    pages = []
    cursor = None
    while True:
        answer = _get(server, **params, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        cursor = pages[-1]["cursor"]
        if cursor is None:
            return pages


def test_paging_through_every_trade_returns_each_once_in_time_order(
    market: list[Trade], server: RunningServer
) -> None:
    # GIVEN 1,200 AAPL trades in the table, beside MSFT trades of the same milliseconds
    expected = _in_time_order(market)
    # WHEN they are read 100 at a time, following the cursor until it is null
    pages = _all_pages(server, symbol="AAPL", limit=100)
    # THEN each trade came back exactly once, in time order, in exactly 12 full pages (the last
    # page is full yet says it is the last: no empty page to fetch)
    ids = [trade["id"] for page in pages for trade in page["trades"]]
    assert ids == [t.id for t in expected]
    assert len(set(ids)) == N
    assert [len(page["trades"]) for page in pages] == [100] * 12
    times = [trade["t"] for page in pages for trade in page["trades"]]
    assert times == sorted(times)


def test_trades_come_back_in_the_record_shape_with_numbers_as_numbers(
    market: list[Trade], server: RunningServer
) -> None:
    # GIVEN the stored trades WHEN the first page of MSFT is read
    answer = _get(server, symbol="MSFT", limit=1000)
    # THEN each is the record the edge stamped, field for field (no sk, no TTL), numbers as JSON
    # numbers, and the one page says it is the last
    body = answer.json()
    assert body["cursor"] is None
    msft = _in_time_order(market, "MSFT")
    expected = [t.model_dump(mode="json", exclude_none=True) for t in msft]
    assert body["trades"] == expected
    assert isinstance(body["trades"][0]["p"], float)
    assert isinstance(body["trades"][0]["t"], int)
    aapl = _get(server, symbol="AAPL", limit=1).json()["trades"][0]
    assert list(aapl) == ["s", "p", "v", "t", "c", "id", "rt"]


def test_a_time_slice_returns_exactly_its_trades_both_ends_included(
    market: list[Trade], server: RunningServer
) -> None:
    # GIVEN trades two per millisecond WHEN ms 100..199 are read, the bounds once in epoch ms and
    # once in ISO 8601, in pages of 7 (so a page boundary splits a millisecond's pair)
    in_ms = _all_pages(server, symbol="AAPL", **{"from": T0 + 100}, to=T0 + 199, limit=7)
    iso = datetime.fromtimestamp((T0 + 100) / 1000, UTC).isoformat().replace("+00:00", "Z")
    in_iso = _all_pages(server, symbol="AAPL", **{"from": iso}, to=T0 + 199, limit=1000)
    # THEN both return exactly the 200 trades of those 100 ms, each once, in order
    expected = [t.id for t in _in_time_order(market) if T0 + 100 <= t.t <= T0 + 199]
    assert len(expected) == 200
    assert [t["id"] for page in in_ms for t in page["trades"]] == expected
    assert [t["id"] for page in in_iso for t in page["trades"]] == expected


def test_same_millisecond_trades_both_come_back(market: list[Trade], server: RunningServer) -> None:
    # GIVEN two AAPL trades in millisecond T0+5 WHEN from = to = that millisecond
    answer = _get(server, symbol="AAPL", **{"from": T0 + 5}, to=T0 + 5)
    # THEN both are there, distinct
    trades = answer.json()["trades"]
    assert [t["t"] for t in trades] == [T0 + 5, T0 + 5]
    assert len({t["id"] for t in trades}) == 2


def test_latest_is_the_newest_trade_and_a_symbol_without_trades_is_404(
    market: list[Trade], server: RunningServer
) -> None:
    # GIVEN the stored trades WHEN the latest AAPL trade, and an unknown symbol's, are asked
    latest = _get(server, "/v1/trades/latest", symbol="AAPL")
    unknown = _get(server, "/v1/trades/latest", symbol="NOPE")
    # THEN the first is the last trade in time order, the second a 404 in the Problem shape
    assert latest.status_code == 200
    assert latest.json()["trade"]["id"] == _in_time_order(market)[-1].id
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "NoTrades"
    # ... and a range read of a symbol with no trades is one empty, last page
    assert _get(server, symbol="NOPE").json() == {"trades": [], "cursor": None}


@pytest.mark.parametrize("path", ["/v1/trades", "/v1/trades/latest"])
def test_reads_need_an_api_key(server: RunningServer, path: str) -> None:
    # GIVEN no key, then a wrong one WHEN a read is asked THEN 401, as for POST
    for headers in ({}, {"X-API-Key": "not-a-key-0123456789"}):
        answer = httpx.get(f"{server.url}{path}", params={"symbol": "AAPL"}, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["code"] == "Unauthorized"


def _cursor_of(symbol: str, sort_key: str) -> str:
    raw = json.dumps({"s": symbol, "sk": sort_key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"symbol": "AAPL", "from": T0 + 10, "to": T0}, "after to"),
        ({"symbol": "AAPL", "from": "yesterday"}, "ISO 8601"),
        ({"symbol": "bad symbol!"}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({}, "symbol"),
        ({"symbol": "AAPL", "limit": 0}, "limit"),
        ({"symbol": "AAPL", "limit": 1001}, "limit"),
        ({"symbol": "AAPL", "cursor": "not-a-cursor!"}, "cursor"),
        ({"symbol": "AAPL", "cursor": _cursor_of("AAPL", "garbage")}, "cursor"),
        ({"symbol": "MSFT", "cursor": _cursor_of("AAPL", f"{T0:013d}#abcdef0123456789")}, "symbol"),
        (
            {"symbol": "AAPL", "from": T0 + 10, "cursor": _cursor_of("AAPL", f"{T0:013d}#ab")},
            "outside",
        ),
    ],
    ids=[
        "from-after-to",
        "from-not-a-time",
        "bad-symbol",
        "empty-symbol",
        "no-symbol",
        "limit-0",
        "limit-1001",
        "cursor-not-base64-json",
        "cursor-tampered",
        "cursor-of-another-symbol",
        "cursor-outside-the-range",
    ],
)
def test_a_bad_query_is_a_422_that_says_what_is_wrong(
    server: RunningServer, params: dict[str, Any], says: str
) -> None:
    # GIVEN a query the API cannot answer WHEN it is sent
    answer = _get(server, **params)
    # THEN a 422 in the Problem shape, naming the parameter
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "InvalidQuery"
    assert says in answer.json()["detail"]


def test_an_unknown_query_parameter_is_refused_not_ignored(server: RunningServer) -> None:
    # GIVEN a misspelt bound (form= for from=), which ignored would widen the read to all time
    answers = [
        _get(server, path, symbol="AAPL", form=str(T0))
        for path in ("/v1/trades", "/v1/trades/latest")
    ]
    # THEN both reads answer 422 naming it, and read nothing
    assert [a.status_code for a in answers] == [422, 422]
    assert all("form" in a.json()["detail"] for a in answers)


def test_a_cursor_issued_for_one_symbol_is_refused_for_another(
    market: list[Trade], server: RunningServer
) -> None:
    # GIVEN a real cursor from an AAPL page WHEN it is sent with MSFT
    cursor = _get(server, symbol="AAPL", limit=10).json()["cursor"]
    answer = _get(server, symbol="MSFT", cursor=cursor)
    # THEN 422; with AAPL it gives the next page
    assert answer.status_code == 422
    assert _get(server, symbol="AAPL", cursor=cursor, limit=10).status_code == 200


def test_reads_share_the_keys_rate_limit(resources: Resources) -> None:
    # GIVEN a key allowed a burst of 3 requests and one more a minute
    with _serve(resources.table, rate_limit_burst=3, rate_limit_per_second=1 / 60) as server:
        # WHEN 4 reads are made at once
        answers = [_get(server, symbol="AAPL") for _ in range(4)]
    # THEN the fourth is a 429 that says when to come back
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[3].headers["Retry-After"]) >= 1
    assert answers[3].json()["code"] == "RateLimited"


def test_the_reads_are_in_the_openapi_document_behind_the_key(server: RunningServer) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path in ("/v1/trades", "/v1/trades/latest"):
        assert paths[path]["get"]["security"] == [{"ApiKey": []}]
    names = {p["name"] for p in paths["/v1/trades"]["get"]["parameters"]}
    assert names == {"symbol", "from", "to", "limit", "cursor"}
