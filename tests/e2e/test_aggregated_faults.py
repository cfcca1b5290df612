"""Both sinks reconcile exactly with aggregation on (the producer's default) while faults are
injected: ~25% of PutRecords entries (aggregates) refused, ~30% of BatchWriteItem items left
unprocessed, and one poison record on the stream. Every trade is one DynamoDB item and one
predicted lake trade; the poison record alone is in the DLQ and under the lake's error prefix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from producer.app import run
from producer.settings import ProducerSettings
from tests.support.faults import FaultProxy
from tests.support.stacks import embedded_lake_stack, settle
from tradestream import aws, readback
from tradestream.local.moto_server import MotoHandle
from tradestream.local.runtime import EmbeddedStack

TRADES = 3000


@pytest.fixture
def faulty(
    aws_env: str, moto: MotoHandle, unique: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[EmbeddedStack, FaultProxy]]:
    with FaultProxy(moto.url, seed=5) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", proxy.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        with embedded_lake_stack("aggfault", unique, monkeypatch) as stack:
            yield stack, proxy


@pytest.mark.slow
def test_aggregated_trades_reconcile_in_both_sinks_under_faults(
    faulty: tuple[EmbeddedStack, FaultProxy],
) -> None:
    stack, proxy = faulty
    proxy.kinesis_put_failure_rate = 0.25
    proxy.dynamodb_unprocessed_rate = 0.3
    # GIVEN one poison record on the stream
    aws.client("kinesis").put_record(
        StreamName=stack.stack.stream_name, Data=b"not a trade", PartitionKey="AAPL"
    )
    # WHEN the producer, aggregating (its default), sends 3,000 distinct trades
    settings = ProducerSettings(
        stream_name=stack.stack.stream_name,
        source="synthetic",
        max_trades=TRADES,
        synthetic_seed=31,
        put_backoff_base_seconds=0.01,
        put_backoff_max_seconds=0.05,
    )
    assert settings.aggregation is True
    stats = asyncio.run(run(settings))
    settle(stack)
    # THEN it sent aggregates, some were refused and resent whole, and nothing failed
    assert stats.aggregates_put > 0
    assert stats.kinesis_records_retried == proxy.injected["PutRecords:entries"] > 0
    assert (stats.failed, stats.distinct) == (0, TRADES)
    # AND DynamoDB holds every trade once, the poison record alone went to the DLQ
    assert proxy.injected["BatchWriteItem:unprocessed"] > 0
    assert readback.count_items(stack.stack.table_name) == TRADES
    assert readback.queue_depth(stack.stack.dlq_url) == 1
    # AND the lake holds every trade, predicted; only the poison record is under the error prefix
    assert stack.lake is not None
    lake = readback.count_lake(
        stack.lake.bucket_name,
        data_prefix=stack.lake.data_prefix,
        error_prefix=stack.lake.error_prefix,
    )
    assert (lake.distinct_ids, lake.predicted, lake.errors) == (TRADES, TRADES, 1)
