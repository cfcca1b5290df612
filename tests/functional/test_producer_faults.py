"""Partial failures over real HTTP (FaultProxy in front of moto): only failed entries are resent,
every trade ends up in the stream, and the counters match what the proxy injected."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from producer.app import run
from producer.settings import ProducerSettings
from tests.support.faults import FaultProxy
from tests.support.kinesis import create_stream, expected_ids, read_stream
from tradestream.local.moto_server import MotoHandle


def settings_for(stream: str, trades: int) -> ProducerSettings:
    # Plain records, one per trade, whatever AGGREGATION's default: these tests count entries
    # (tests/functional/test_producer_aggregation.py has the aggregated ones).
    return ProducerSettings(
        aggregation=False,
        stream_name=stream,
        source="synthetic",
        max_trades=trades,
        synthetic_seed=21,
        max_put_attempts=30,
        put_backoff_base_seconds=0.01,
        put_backoff_max_seconds=0.05,
    )


async def test_a_fifth_of_entries_failing_still_lands_every_trade(
    aws_env: str, moto: MotoHandle, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stream behind a proxy failing ~20% of PutRecords entries (HTTP 200, ErrorCode)
    stream = f"faults-{unique}"
    kinesis = create_stream(stream)
    with FaultProxy(moto.url, seed=5) as proxy:
        proxy.kinesis_put_failure_rate = 0.2
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        # WHEN 2,000 distinct trades are produced through it
        stats = await run(settings_for(stream, 2000))
    # THEN every id is in the stream, each exactly as often as the source sent it
    ids = [json.loads(r["Data"])["id"] for r in read_stream(kinesis, stream)]
    expected = await expected_ids(21, 2000)
    assert Counter(ids) == Counter(expected)
    assert len(set(ids)) == 2000
    assert len(ids) == stats.published == stats.trades
    assert stats.failed == 0
    # AND the resends are exactly the entries the proxy failed, in exactly the calls it saw
    injected = proxy.injected["PutRecords:entries"]
    assert stats.retried == injected
    assert 0.15 * stats.trades < injected < 0.35 * stats.trades
    assert stats.put_calls == proxy.counts["PutRecords"]
    print(f"records={len(ids)} distinct={len(set(ids))} retried={injected} calls={stats.put_calls}")


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ThrottlingException"), (500, "InternalFailure")],
    ids=["throttled", "5xx"],
)
async def test_whole_call_failures_are_retried_until_they_pass(
    aws_env: str,
    moto: MotoHandle,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    code: str,
) -> None:
    # GIVEN a proxy answering the next 3 PutRecords calls with an error as a whole
    stream = f"faults-{unique}"
    kinesis = create_stream(stream, shards=1)
    with FaultProxy(moto.url) as proxy:
        proxy.fail_next("PutRecords", 3, status=status, code=code)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        # WHEN 300 trades are produced
        stats = await run(settings_for(stream, 300))
    # THEN three calls failed and were retried, and every trade arrived once
    ids = [json.loads(r["Data"])["id"] for r in read_stream(kinesis, stream)]
    assert Counter(ids) == Counter(await expected_ids(21, 300))
    assert stats.call_errors == proxy.injected[f"PutRecords:{code}"] == 3
    assert stats.put_calls == proxy.counts["PutRecords"]
    assert stats.retried >= 3
    assert (stats.failed, stats.published) == (0, stats.trades)
