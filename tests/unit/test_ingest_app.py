"""The HTTP layer in process (ASGI), with the Kinesis batcher swapped for an in-memory sink."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from ingest_api.app import create_app
from ingest_api.batcher import BufferFullError, PutOutcome
from ingest_api.deps import TradeSink, get_readiness, get_sink
from ingest_api.log import logger
from ingest_api.models import Readiness
from ingest_api.settings import IngestSettings
from tradestream.trade import RawTrade, Trade, stamp

KEY = "unit-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
NOW = 1_718_000_000_000


class MemorySink:
    """Accepts everything, or refuses the ids listed in ``refuse`` as if the budget ran out."""

    def __init__(self, refuse: Sequence[str] = (), error: Exception | None = None) -> None:
        self.records: list[tuple[str, str, bytes]] = []
        self.refuse = set(refuse)
        self.error = error
        self.closing = False

    async def put(self, records: Sequence[tuple[str, str, bytes]]) -> PutOutcome:
        if self.error is not None:
            raise self.error
        self.records += records
        ids = [r[0] for r in records]
        return PutOutcome(
            [i for i in ids if i not in self.refuse], [i for i in ids if i in self.refuse]
        )


class FixedProbe:
    async def check(self) -> Readiness:
        return Readiness(ready=True, stream="trades", status="ACTIVE")


def _trade(**overrides: Any) -> dict[str, Any]:
    return {"s": "AAPL", "p": 189.5, "v": 100, "t": NOW, **overrides}


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


def _app(sink: TradeSink, **settings: Any) -> Any:
    app = create_app(IngestSettings(ingest_api_keys=KEY, **settings))
    app.dependency_overrides[get_sink] = lambda: sink
    app.dependency_overrides[get_readiness] = lambda: FixedProbe()
    return app


@pytest.fixture
async def client(sink: MemorySink) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(sink, rate_limit_burst=1000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
        yield http


async def test_accepted_trades_reach_the_sink_keyed_by_symbol_with_deterministic_ids(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    # GIVEN two identical trades and one other in one request
    trades = [_trade(), _trade(), _trade(s="MSFT", c=["1"])]
    # WHEN they are posted
    response = await client.post("/v1/trades", json=trades, headers=HEADERS)
    # THEN the answer is 202 with the ids stamp() derives, in order, and the sink has the records
    expected = [t.id for t in stamp([RawTrade(**t) for t in trades], NOW)]
    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "ids": expected}
    assert len(set(expected)) == 3
    assert [(record_id, key) for record_id, key, _ in sink.records] == list(
        zip(expected, ["AAPL", "AAPL", "MSFT"], strict=True)
    )
    stored = Trade.from_record(sink.records[2][2])
    assert (stored.s, stored.c, stored.id) == ("MSFT", ("1",), expected[2])
    assert stored.rt >= NOW


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong-key-0123456789"}, {"X-API-Key": ""}])
async def test_no_or_a_wrong_key_is_a_401_and_nothing_is_put(
    client: httpx.AsyncClient, sink: MemorySink, headers: dict[str, str]
) -> None:
    response = await client.post("/v1/trades", json=_trade(), headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    assert sink.records == []


async def test_a_key_over_its_rate_gets_429_with_retry_after(sink: MemorySink) -> None:
    # GIVEN a limit of 2 requests then one every 4 seconds
    app = _app(sink, rate_limit_burst=2, rate_limit_per_second=0.25)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as http:
        # WHEN 3 requests arrive at once
        codes = [
            (await http.post("/v1/trades", json=_trade(v=i), headers=HEADERS)).status_code
            for i in range(2)
        ]
        third = await http.post("/v1/trades", json=_trade(v=9), headers=HEADERS)
    # THEN the third waits 4 s and was not put
    assert codes == [202, 202]
    assert third.status_code == 429
    assert third.headers["Retry-After"] == "4"
    assert len(sink.records) == 2


async def test_unsupported_media_type_is_a_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/trades", content=json.dumps(_trade()), headers={**HEADERS, "content-type": "text/csv"}
    )
    assert response.status_code == 415


async def test_budget_exhausted_is_a_503_listing_the_durable_ids(sink: MemorySink) -> None:
    # GIVEN a sink that gives up on the second of three trades
    trades = [_trade(v=1), _trade(v=2), _trade(v=3)]
    ids = [t.id for t in stamp([RawTrade(**t) for t in trades], NOW)]
    app = _app(MemorySink(refuse=[ids[1]]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as http:
        # WHEN they are posted
        response = await http.post("/v1/trades", json=trades, headers=HEADERS)
    # THEN 503 says to come back, which ids are durable and which to resend
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert (body["code"], body["accepted"], body["ids"], body["not_accepted"]) == (
        "KinesisUnavailable",
        2,
        [ids[0], ids[2]],
        [ids[1]],
    )


async def test_a_full_buffer_is_an_immediate_503() -> None:
    app = _app(MemorySink(error=BufferFullError("the service is saturated; retry shortly")))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as http:
        response = await http.post("/v1/trades", json=_trade(), headers=HEADERS)
    assert response.status_code == 503
    assert response.json()["code"] == "BufferFull"
    assert response.json()["accepted"] == 0
    assert response.headers["Retry-After"] == "2"


async def test_request_ids_are_echoed_or_made_and_logs_carry_them_but_never_the_key(
    client: httpx.AsyncClient,
) -> None:
    # GIVEN the service's log records captured as the JSON lines it writes
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        # WHEN one request brings an id, one a malformed id and one none
        given = await client.post(
            "/v1/trades", json=_trade(), headers={**HEADERS, "X-Request-Id": "lb-123"}
        )
        odd = await client.post(
            "/v1/trades", json=_trade(), headers={**HEADERS, "X-Request-Id": "a b\tc"}
        )
        bad = await client.post("/v1/trades", json=_trade(), headers={"X-API-Key": "nope" * 5})
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # THEN the given id is echoed, the others are fresh, and each log line names its request
    assert given.headers["x-request-id"] == "lb-123"
    assert len(odd.headers["x-request-id"]) == 32
    assert odd.headers["x-request-id"] != bad.headers["x-request-id"]
    access = [line for line in lines if line["message"] == "request"]
    assert [(line["request_id"], line["status"]) for line in access] == [
        ("lb-123", 202),
        (odd.headers["x-request-id"], 202),
        (bad.headers["x-request-id"], 401),
    ]
    assert access[0]["caller"].startswith("key-")
    assert KEY not in stream.getvalue()
    assert "nope" * 5 not in stream.getvalue()


async def test_metrics_count_requests_by_status_and_trades(client: httpx.AsyncClient) -> None:
    # GIVEN one accepted request of 2 trades and one refused for its key
    await client.post("/v1/trades", json=[_trade(), _trade(v=5)], headers=HEADERS)
    await client.post("/v1/trades", json=_trade(), headers={})
    # WHEN the metrics are scraped
    text = (await client.get("/metrics")).text
    # THEN they count both, by route and status
    assert 'ingest_http_requests_total{method="POST",route="/v1/trades",status="202"} 1.0' in text
    assert 'ingest_http_requests_total{method="POST",route="/v1/trades",status="401"} 1.0' in text
    assert "ingest_trades_received_total 2.0" in text
    assert 'ingest_requests_rejected_total{code="Unauthorized"} 1.0' in text
    assert 'ingest_http_request_duration_seconds_count{route="/v1/trades"} 2.0' in text


async def test_readyz_reflects_the_probe_and_shutdown(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    ready = await client.get("/readyz")
    sink.closing = True
    stopping = await client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ACTIVE")
    assert (stopping.status_code, stopping.json()["reason"]) == (503, "ShuttingDown")
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_openapi_describes_bodies_responses_and_the_key_scheme(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    post = doc["paths"]["/v1/trades"]["post"]
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": doc["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    assert post["security"] == [{"ApiKey": []}]
    assert set(post["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert set(post["responses"]) == {"202", "400", "401", "413", "415", "422", "429", "503"}
    assert doc["components"]["schemas"]["Trade"]["additionalProperties"] is False
    assert doc["components"]["schemas"]["Trade"]["required"] == ["s", "p", "v", "t"]


async def test_with_access_logs_off_only_server_errors_are_logged() -> None:
    # GIVEN ACCESS_LOG off and a sink that breaks on its second call
    calls = 0

    class BreaksOnce(MemorySink):
        async def put(self, records: Sequence[tuple[str, str, bytes]]) -> PutOutcome:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("boom")
            return await super().put(records)

    app = _app(BreaksOnce(), access_log=False)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            # WHEN one request succeeds and the next one fails inside the service
            ok = await http.post("/v1/trades", json=_trade(), headers=HEADERS)
            broken = await http.post("/v1/trades", json=_trade(v=2), headers=HEADERS)
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # THEN the success left no line and the failure left its traceback and an error line
    assert (ok.status_code, broken.status_code) == (202, 500)
    assert [(line["level"], line["message"]) for line in lines] == [
        ("ERROR", "unhandled error"),
        ("ERROR", "request failed"),
    ]
    assert "boom" in lines[0]["exception"]
    assert lines[0]["request_id"] == lines[1]["request_id"]
