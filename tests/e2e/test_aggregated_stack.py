"""End to end on the embedded stack with KPL-aggregated records put straight on the stream, made by
``tradestream.kpl`` and by aws-kinesis-agg's aggregator: the event source mapping hands the
aggregates to the hotstore as they are, which opens them into DynamoDB; the Firehose emulation
opens them before the enrich transform, into the lake. Every count is exact: each trade one item
and one lake line, nothing in the DLQ or under the error prefix, and putting the same aggregates
again adds no item and no trade."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_plain_finnhub_stack import lake_errors, lake_lines
from tests.support.fake_sagemaker import prediction_for
from tests.support.hotstore import distinct_trades
from tests.support.kpl import ours, theirs, trade_records
from tests.support.stacks import embedded_lake_stack, items, settle
from tradestream import aws, readback
from tradestream.local.runtime import EmbeddedStack
from tradestream.trade import Trade

TRADES = 400
Record = tuple[str, bytes]  # partition key, data


@pytest.fixture
def stack(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedStack]:
    with embedded_lake_stack("agg", unique, monkeypatch) as running:
        yield running


def aggregated(trades: list[Trade]) -> list[Record]:
    """Half the trades in aggregates of ours (20 user records each, mixed symbols), half in
    aws-kinesis-agg's (cut at 4 KiB): the Kinesis records to put."""
    records = trade_records(trades)
    half = len(records) // 2
    by_us = [ours(records[i : i + 20]) for i in range(0, half, 20)]
    by_them = theirs(records[half:], max_bytes=4096)
    assert len(by_them) > 1
    return [*by_us, *by_them]


def put(stack: EmbeddedStack, records: list[Record]) -> None:
    response = aws.client("kinesis").put_records(
        StreamName=stack.stack.stream_name,
        Records=[{"Data": data, "PartitionKey": key} for key, data in records],
    )
    assert response["FailedRecordCount"] == 0


def test_aggregates_of_ours_and_aws_kinesis_agg_reach_both_sinks_trade_by_trade(
    stack: EmbeddedStack,
) -> None:
    # GIVEN 400 distinct trades in some 30 aggregates, put on the stream
    trades = distinct_trades(TRADES)
    records = aggregated(trades)
    assert len(records) < TRADES / 10

    # WHEN both consumers have handled them
    put(stack, records)
    settle(stack)

    # THEN every trade is one DynamoDB item under its own id, and none is in the DLQ
    ids = {trade.id for trade in trades}
    stored = items(stack.stack.table_name)
    assert len(stored) == TRADES
    assert {item["id"]["S"] for item in stored.values()} == ids
    assert readback.queue_depth(stack.stack.dlq_url) == 0
    # AND every trade is one lake line, predicted, nothing under the error prefix
    lines = lake_lines(stack)
    assert len(lines) == TRADES
    assert {line["id"] for line in lines} == ids
    assert all(line["prediction"] == prediction_for(line) for line in lines)
    assert lake_errors(stack) == []
    # AND the mapping handed over Kinesis records, the lake read them and opened them
    assert stack.mapping is not None
    assert stack.firehose is not None
    assert stack.mapping.stats.records_succeeded == len(records)
    lake = stack.firehose.stats
    assert (lake.records_in, lake.user_records_in) == (len(records), TRADES)

    # WHEN the same aggregates are put again (a producer's retry)
    put(stack, records)
    settle(stack)

    # THEN no item is added, and the lake has a second line per trade but no new trade
    assert set(items(stack.stack.table_name)) == set(stored)
    assert readback.queue_depth(stack.stack.dlq_url) == 0
    assert stack.lake is not None
    counts = readback.count_lake(stack.lake.bucket_name)
    assert (counts.records, counts.distinct_ids, counts.errors) == (2 * TRADES, TRADES, 0)
