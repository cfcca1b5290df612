"""The ingest service under a real uvicorn server on loopback, against moto server over HTTP,
with AWS-shaped faults injected by FaultProxy between the service and moto."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest_api import IngestSettings, RunningServer, start_in_thread
from tests.support.deaggregated import by_aws_kinesis_agg, by_kpl, trade_ids
from tests.support.faults import FaultProxy
from tests.support.kinesis import read_stream
from tradestream import aws, kpl
from tradestream.local.moto_server import MotoHandle
from tradestream.trade import RawTrade, Trade, stamp

KEY = "functional-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
T0 = 1_718_000_000_000


def _trade(n: int, symbol: str = "AAPL") -> dict[str, Any]:
    return {"s": symbol, "p": 100 + n / 100, "v": n % 7, "t": T0 + n, "c": ["1"]}


def _ids(trades: list[dict[str, Any]]) -> list[str]:
    return [t.id for t in stamp([RawTrade(**t) for t in trades], T0)]


def _serve(stream: str, **overrides: Any) -> RunningServer:
    settings: dict[str, Any] = {
        "stream_name": stream,
        "ingest_api_keys": KEY,
        "readiness_cache_seconds": 0,
        "put_backoff_base_ms": 5,
        "put_backoff_max_ms": 20,
        # Plain records, one per trade, whatever AGGREGATION's default: the tests read and count
        # entries; the aggregated ones turn it on.
        "aggregation": False,
        **overrides,
    }
    return start_in_thread(IngestSettings(**settings))


def _stored(stream: str) -> list[Trade]:
    kinesis = aws.client("kinesis")
    trades: list[Trade] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            trades += [Trade.from_record(r["Data"]) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return trades


@pytest.fixture
def stream(aws_env: str, unique: str) -> str:
    name = f"ingest-{unique}"
    aws.client("kinesis").create_stream(StreamName=name, ShardCount=2)
    return name


@pytest.fixture
def server(stream: str) -> Iterator[RunningServer]:
    with _serve(stream) as running:
        yield running


@pytest.fixture
def proxy(moto: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy that the service's Kinesis client (and only it) goes through."""
    with FaultProxy(moto.url, seed=11) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", running.url)
        yield running


def _sample(metrics_text: str, name: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in the metrics")


def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/trades", json=body, headers=HEADERS if headers is None else headers
    )


def test_single_array_and_ndjson_bodies_land_in_the_stream_once_each(
    server: RunningServer, stream: str
) -> None:
    # GIVEN one trade, an array of three (two identical) and NDJSON of two
    single, lines = [_trade(1)], [_trade(4), _trade(5)]
    array = [_trade(2), _trade(2), _trade(3, "MSFT")]
    ndjson = "\n".join(json.dumps(t) for t in lines) + "\n"
    # WHEN each is posted
    responses = [
        _post(server.url, single[0]),
        _post(server.url, array),
        httpx.post(
            f"{server.url}/v1/trades",
            content=ndjson,
            headers={**HEADERS, "Content-Type": "application/x-ndjson"},
        ),
    ]
    # THEN each is a 202 with its deterministic ids, and the stream holds those 6 trades once each
    assert [r.status_code for r in responses] == [202, 202, 202]
    expected = [_ids(single), _ids(array), _ids(lines)]
    assert [r.json() for r in responses] == [{"accepted": len(i), "ids": i} for i in expected]
    stored = _stored(stream)
    assert Counter(t.id for t in stored) == Counter(i for ids in expected for i in ids)
    assert len(stored) == 6
    assert {t.s for t in stored if t.id in expected[1]} == {"AAPL", "MSFT"}


def test_no_or_a_wrong_key_is_a_401(server: RunningServer, stream: str) -> None:
    missing = _post(server.url, _trade(1), headers={})
    wrong = _post(server.url, _trade(1), headers={"X-API-Key": "x" * 30})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert _stored(stream) == []


def test_oversized_bodies_and_too_many_trades_are_413(stream: str) -> None:
    # GIVEN a service taking 1 KiB bodies and 3 trades per request
    with _serve(stream, max_body_bytes=1024, max_trades_per_request=3) as server:
        big = [_trade(n) for n in range(3)]
        big[0]["c"] = ["x" * 16] * 32  # ~640 bytes of condition codes
        big[1]["c"] = big[2]["c"] = big[0]["c"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
            for _ in range(8):
                yield b" " * 1024

        # WHEN a declared-large body, a chunked body without a length and 4 small trades arrive
        declared = _post(server.url, big)
        chunked = httpx.post(
            f"{server.url}/v1/trades",
            content=chunks(),
            headers={**HEADERS, "Content-Type": "application/json"},
        )
        too_many = _post(server.url, [_trade(n) for n in range(4)])
        just_right = _post(server.url, [_trade(n) for n in range(3)])
    # THEN the first three are 413 and nothing of them was put
    assert [declared.status_code, chunked.status_code, too_many.status_code] == [413] * 3
    assert "at most 3 trades" in too_many.json()["detail"]
    assert just_right.status_code == 202
    assert {t.id for t in _stored(stream)} == set(just_right.json()["ids"])


def test_invalid_trades_are_a_422_naming_each_index_and_nothing_is_put(
    server: RunningServer, stream: str
) -> None:
    # GIVEN five trades of which #1 has a negative price and #4 an unknown field and no volume
    trades = [_trade(n) for n in range(5)]
    trades[1]["p"] = -3
    trades[4] = {**trades[4], "price": 1}
    del trades[4]["v"]
    # WHEN they are posted
    response = _post(server.url, trades)
    # THEN the answer lists exactly those problems and the stream stays empty
    assert response.status_code == 422
    problems = {(e["index"], e["field"]) for e in response.json()["errors"]}
    assert problems == {(1, "p"), (4, "v"), (4, "price")}
    assert _stored(stream) == []


def test_a_key_over_its_rate_gets_429_with_retry_after(stream: str) -> None:
    with _serve(stream, rate_limit_burst=2, rate_limit_per_second=0.5) as server:
        codes = [_post(server.url, _trade(n)).status_code for n in range(2)]
        limited = _post(server.url, _trade(9))
    assert codes == [202, 202]
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert len(_stored(stream)) == 2


async def _post_concurrently(url: str, bodies: list[list[dict[str, Any]]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
        return await asyncio.gather(*(client.post("/v1/trades", json=b) for b in bodies))


def test_throttled_entries_are_resent_so_every_trade_lands_exactly_once(
    stream: str, proxy: FaultProxy
) -> None:
    # GIVEN Kinesis throttling 30% of PutRecords entries
    proxy.kinesis_put_failure_rate = 0.3
    bodies = [[_trade(r * 100 + n, f"S{n % 5}") for n in range(50)] for r in range(8)]
    with _serve(stream) as server:
        # WHEN 8 requests of 50 trades arrive at once
        responses = asyncio.run(_post_concurrently(server.url, bodies))
        metrics = httpx.get(f"{server.url}/metrics").text
    # THEN all are 202 and the stream holds each of the 400 trades exactly once
    assert [r.status_code for r in responses] == [202] * 8
    sent = [i for r in responses for i in r.json()["ids"]]
    assert sent == [i for body in bodies for i in _ids(body)]
    assert Counter(t.id for t in _stored(stream)) == Counter(sent)
    assert max(Counter(sent).values()) == 1
    assert proxy.injected["PutRecords:entries"] > 0
    assert (
        _sample(metrics, "ingest_kinesis_entries_retried_total")
        >= proxy.injected["PutRecords:entries"]
    )


def test_with_aggregation_posted_trades_arrive_exactly_in_few_aggregates(stream: str) -> None:
    # GIVEN the service with aggregation on
    bodies = [[_trade(r * 100 + n, f"S{n % 5}") for n in range(50)] for r in range(20)]
    with _serve(stream, aggregation=True) as server:
        # WHEN 20 requests of 50 trades arrive at once
        responses = asyncio.run(_post_concurrently(server.url, bodies))
        metrics = httpx.get(f"{server.url}/metrics").text
    # THEN all are 202, and both readers find each of the 1,000 trades in the stream once
    assert [r.status_code for r in responses] == [202] * 20
    sent = [i for r in responses for i in r.json()["ids"]]
    assert sent == [i for body in bodies for i in _ids(body)]
    records = read_stream(aws.client("kinesis"), stream)
    ours = by_kpl(records)
    assert by_aws_kinesis_agg(records) == ours
    assert Counter(trade_ids(ours)) == Counter(sent)
    assert len(set(sent)) == 1000
    # AND the Kinesis records are few aggregates, counted apart from the trades
    assert _sample(metrics, "ingest_kinesis_records_put_total") == len(records) < 100
    assert _sample(metrics, "ingest_kinesis_aggregates_put_total") == sum(
        1 for r in records if kpl.is_aggregate(r["Data"])
    )
    assert _sample(metrics, "ingest_trades_accepted_total") == 1000


def test_with_aggregation_refused_aggregates_are_resent_so_every_trade_lands_once(
    stream: str, proxy: FaultProxy
) -> None:
    # GIVEN small aggregates (1 KiB) and Kinesis throttling 30% of PutRecords entries
    proxy.kinesis_put_failure_rate = 0.3
    bodies = [[_trade(r * 100 + n, f"S{n % 5}") for n in range(50)] for r in range(8)]
    with _serve(stream, aggregation=True, aggregation_max_bytes=1024) as server:
        # WHEN 8 requests of 50 trades arrive at once
        responses = asyncio.run(_post_concurrently(server.url, bodies))
        metrics = httpx.get(f"{server.url}/metrics").text
    # THEN all are 202 and the stream holds each of the 400 trades exactly once
    assert [r.status_code for r in responses] == [202] * 8
    sent = [i for r in responses for i in r.json()["ids"]]
    records = read_stream(aws.client("kinesis"), stream)
    assert Counter(trade_ids(by_kpl(records))) == Counter(sent)
    assert len(set(sent)) == 400
    # AND exactly the refused aggregates were sent again
    injected = proxy.injected["PutRecords:entries"]
    assert _sample(metrics, "ingest_kinesis_entries_retried_total") == injected > 0
    assert _sample(metrics, "ingest_trades_retried_total") > injected
    assert _sample(metrics, "ingest_kinesis_records_put_total") == len(records)


def test_entries_failing_beyond_the_budget_give_503_listing_the_durable_ids(
    stream: str, proxy: FaultProxy
) -> None:
    # GIVEN half the entries throttled and a budget of a single attempt
    proxy.kinesis_put_failure_rate = 0.5
    trades = [_trade(n) for n in range(40)]
    with _serve(stream, put_max_attempts=1) as server:
        # WHEN 40 trades are posted
        response = _post(server.url, trades)
    # THEN 503 with Retry-After; the ids it calls durable are exactly those in the stream
    body = response.json()
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    assert body["accepted"] == len(body["ids"]) == 40 - proxy.injected["PutRecords:entries"]
    assert 0 < body["accepted"] < 40
    assert sorted(t.id for t in _stored(stream)) == sorted(body["ids"])
    everything = _ids(trades)
    assert sorted(body["ids"] + body["not_accepted"]) == sorted(everything)
    assert body["ids"] == [i for i in everything if i in set(body["ids"])]


def test_kinesis_failing_every_call_gives_503_after_exactly_the_budget(
    stream: str, proxy: FaultProxy
) -> None:
    # GIVEN PutRecords answering 500 for the next 10 calls and a budget of 3 attempts
    proxy.fail_next("PutRecords", 10, status=500)
    with _serve(stream, put_max_attempts=3) as server:
        proxy.reset_counts()
        # WHEN one request of 5 trades is posted
        response = _post(server.url, [_trade(n) for n in range(5)])
    # THEN 3 calls were made, the answer is 503 with nothing accepted, and the stream is empty
    assert proxy.counts["PutRecords"] == 3
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    assert (response.json()["accepted"], response.json()["ids"]) == (0, [])
    assert len(response.json()["not_accepted"]) == 5
    assert _stored(stream) == []


def test_readyz_fails_once_the_stream_is_gone(server: RunningServer, stream: str) -> None:
    # GIVEN a ready service
    before = httpx.get(f"{server.url}/readyz")
    # WHEN its stream is deleted
    aws.client("kinesis").delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    after = httpx.get(f"{server.url}/readyz")
    posted = _post(server.url, _trade(1))
    # THEN readiness turns 503 naming the cause, and trades get 503 without a retry loop
    assert (before.status_code, before.json()["status"]) == (200, "ACTIVE")
    assert (after.status_code, after.json()["reason"]) == (503, "ResourceNotFoundException")
    assert posted.status_code == 503
    assert posted.json()["not_accepted"] == _ids([_trade(1)])
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_start_in_thread_runs_beside_other_event_loops_and_stops_cleanly(stream: str) -> None:
    # GIVEN another thread running its own event loop, as the producer does under `tradestream up`
    stop = threading.Event()
    ticks: list[int] = []

    async def other_work() -> None:
        while not stop.is_set():
            ticks.append(1)
            await asyncio.sleep(0.01)

    other = threading.Thread(target=asyncio.run, args=(other_work(),), daemon=True)
    other.start()
    # WHEN the server starts on a free port, takes a request and stops
    server = _serve(stream)
    response = _post(server.url, _trade(1))
    server.stop()
    stop.set()
    other.join(5)
    # THEN the port was real, the request durable, the server thread is gone and the port free
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert response.status_code == 202
    assert not server.running
    assert len(ticks) > 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=2)
    assert [t.id for t in _stored(stream)] == response.json()["ids"]
