"""End to end on the embedded stack: another producer puts plain Finnhub trades on the stream with
boto3's PutRecords (one trade object per record, no ``id``, no ``rt``, some with fields of its
own), and both consumers take them: Kinesis -> event source mapping -> hotstore -> DynamoDB, and
Kinesis -> Firehose -> enrich -> S3, under the ids the edge would have given them. Putting the
same records again adds no item, and no trade to the lake once its lines are deduplicated by id.
Every count is exact."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fake_sagemaker import MODEL_VERSION, prediction_for
from tests.support.kinesis import read_stream
from tests.support.stacks import embedded_lake_stack, items, settle
from tradestream import aws, readback
from tradestream.local.runtime import EmbeddedStack
from tradestream.trade import parse_raw, stamp

TRADES = 120
SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT", "OANDA:EUR_USD", "IC MARKETS:1")


@pytest.fixture
def stack(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedStack]:
    with embedded_lake_stack("plain", unique, monkeypatch) as running:
        yield running


def plain_trades(count: int) -> list[dict[str, Any]]:
    """Distinct Finnhub trade objects as another producer would write them: integer and
    fractional numbers, with and without conditions, every other one with fields of its own."""
    trades = []
    for i in range(count):
        trade: dict[str, Any] = {
            "s": SYMBOLS[i % len(SYMBOLS)],
            "p": 100 + i if i % 3 == 0 else round(100 + i / 7, 4),
            "v": i % 5 if i % 4 else round(0.001 * (i + 1), 6),
            "t": 1_733_300_000_000 + i // 2,
        }
        if i % 3:
            trade["c"] = ["1", "12"][: 1 + i % 2]
        if i % 2:
            trade["ingested_at"] = f"2024-12-04T08:13:{20 + i % 40:02d}.{i:03d}Z"
            trade["producer"] = "someone-else"
        trades.append(trade)
    return trades


def edge_id(trade: dict[str, Any]) -> str:
    """The id the edge would have given this trade (one trade per frame: occurrence 0)."""
    (stamped,) = stamp([parse_raw(trade)], received_ms=0)
    return stamped.id


def put(stack: EmbeddedStack, trades: list[dict[str, Any]]) -> None:
    kinesis = aws.client("kinesis")
    for start in range(0, len(trades), 50):  # a few calls, as a batching producer makes
        response = kinesis.put_records(
            StreamName=stack.stack.stream_name,
            Records=[
                {"Data": json.dumps(t, separators=(",", ":")).encode(), "PartitionKey": t["s"]}
                for t in trades[start : start + 50]
            ],
        )
        assert response["FailedRecordCount"] == 0


def lake_lines(stack: EmbeddedStack) -> list[dict[str, Any]]:
    assert stack.lake is not None
    assert stack.firehose is not None
    return list(readback.lines(stack.lake.bucket_name, stack.firehose.data_prefix))


def lake_errors(stack: EmbeddedStack) -> list[str]:
    assert stack.lake is not None
    assert stack.firehose is not None
    prefix = stack.firehose.error_prefix
    return [key for key, _ in readback.object_bodies(stack.lake.bucket_name, prefix)]


def arrivals_ms(stack: EmbeddedStack) -> dict[bytes, list[int]]:
    """Each record's data -> the arrival times (epoch ms) of the records carrying it."""
    arrivals: dict[bytes, list[int]] = {}
    for record in read_stream(aws.client("kinesis"), stack.stack.stream_name):
        at = round(record["ApproximateArrivalTimestamp"].timestamp() * 1000)
        arrivals.setdefault(bytes(record["Data"]), []).append(at)
    return arrivals


def test_plain_finnhub_records_are_stored_and_predicted_once_under_the_edges_ids(
    stack: EmbeddedStack,
) -> None:
    # GIVEN another producer's plain Finnhub trades, half with fields of their own
    trades = plain_trades(TRADES)
    expected = {edge_id(t): t for t in trades}
    assert len(expected) == TRADES  # distinct trades, distinct ids

    # WHEN it puts them on the stream and both consumers have handled them
    put(stack, trades)
    settle(stack)

    # THEN every trade is one DynamoDB item under the edge's id, none in the DLQ
    stored = items(stack.stack.table_name)
    assert len(stored) == TRADES
    by_id = {item["id"]["S"]: item for item in stored.values()}
    assert set(by_id) == set(expected)
    assert readback.queue_depth(stack.stack.dlq_url) == 0
    for record_id, trade in expected.items():
        item = by_id[record_id]
        assert item["sk"]["S"] == f"{trade['t']:013d}#{record_id}"
        assert float(item["p"]["N"]) == trade["p"]
        assert "ingested_at" in item  # the hot store's own write time, not the producer's field
        assert "producer" not in item
    # AND every trade is in the lake once, predicted, nothing under the error prefix
    lines = lake_lines(stack)
    assert len(lines) == TRADES
    lake = {line["id"]: line for line in lines}
    assert set(lake) == set(expected)
    assert lake_errors(stack) == []
    for record_id, line in lake.items():
        assert line["prediction"] == prediction_for(line)
        assert line["model_version"] == MODEL_VERSION
        assert "ingested_at" not in line
        assert "producer" not in line
        # its trade fields are the edge's record of it, received when it reached the stream
        (edge,) = stamp([parse_raw(expected[record_id])], received_ms=line["rt"])
        assert {k: v for k, v in line.items() if k not in ("prediction", "model_version")} == (
            json.loads(edge.to_record())
        )
    # AND rt is the record's arrival time, in both sinks (the hot store's event has it in
    # seconds to the ms, the lake's in ms: at most a rounding apart)
    arrivals = arrivals_ms(stack)
    for record_id, trade in expected.items():
        (arrival,) = arrivals[json.dumps(trade, separators=(",", ":")).encode()]
        assert lake[record_id]["rt"] == arrival
        assert abs(int(by_id[record_id]["rt"]["N"]) - arrival) <= 1


def test_putting_the_same_plain_records_again_adds_no_item_and_no_trade(
    stack: EmbeddedStack,
) -> None:
    # GIVEN the plain trades put and handled once
    trades = plain_trades(TRADES)
    put(stack, trades)
    settle(stack)
    first_items = items(stack.stack.table_name)
    first_lines = lake_lines(stack)
    assert len(first_items) == len(first_lines) == TRADES

    # WHEN the producer puts exactly the same records again (a retry, a replay of its own)
    time.sleep(0.01)  # a later arrival, whatever the clock's resolution
    put(stack, trades)
    settle(stack)

    # THEN no item is added: the same keys, each the same trade with the later arrival as rt
    second_items = items(stack.stack.table_name)
    assert set(second_items) == set(first_items)
    for key, item in first_items.items():
        again = second_items[key]
        assert int(again["rt"]["N"]) >= int(item["rt"]["N"])
        ignored = ("rt", "ingested_at")
        assert {k: v for k, v in again.items() if k not in ignored} == {
            k: v for k, v in item.items() if k not in ignored
        }
    assert readback.queue_depth(stack.stack.dlq_url) == 0
    # AND the lake has a second line per trade (new records, new arrival times) and, by id,
    # nothing new: the same trades, the same predictions, nothing under the error prefix
    lines = lake_lines(stack)
    assert len(lines) == 2 * TRADES
    first_by_id = {line["id"]: line for line in first_lines}
    assert {line["id"] for line in lines} == set(first_by_id)
    for line in lines:
        before = first_by_id[line["id"]]
        assert {k: v for k, v in line.items() if k != "rt"} == {
            k: v for k, v in before.items() if k != "rt"
        }
    assert lake_errors(stack) == []
    counts = readback.count_lake(stack.lake.bucket_name) if stack.lake else None
    assert counts is not None
    assert (counts.distinct_ids, counts.predicted, counts.errors) == (TRADES, TRADES, 0)
