"""The hotstore's entry point on KPL-aggregated records, as Lambda delivers them (the event source
mapping hands aggregates over as they are): DynamoDB and SQS are moto server over real HTTP,
faults come from a FaultProxy in front of them.

Aggregates are made both ways, by ``tradestream.kpl`` and by aws-kinesis-agg's aggregator (what
the field's KPL-format producers write), and mixed with plain records: every user record is a
trade or poison on its own, poison goes to the DLQ alone with its sub-sequence number, and a
failed write reports the aggregate's own sequence number, whose redelivery creates nothing new.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.hotstore import handler as hotstore_handler
from lambdas.hotstore.handler import BatchResponse
from lambdas.metrics import Figures
from tests.support.faults import FaultProxy
from tests.support.hotstore import (
    Resources,
    context,
    distinct_trades,
    dlq_bodies,
    items,
    kinesis_event,
    sample,
    trades_event,
)
from tests.support.kpl import corrupt_aggregate, ours, theirs, trade_records
from tradestream.local.moto_server import MotoHandle
from tradestream.trade import parse_raw, stamp

GOOD = trade_records(distinct_trades(3))
NOT_JSON = b"not json {"
PING = b'{"type":"ping"}'


@pytest.fixture
def proxy(moto: MotoHandle) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url, seed=13) as running:
        yield running


def process(event: dict[str, Any]) -> tuple[BatchResponse, dict[str, float]]:
    """The function's work on ``event`` as its entry point does it, and the batch's figures."""
    figures = Figures()
    response = hotstore_handler.hotstore().process(copy.deepcopy(event), context(), figures)
    return response, figures.by_name()


def sequences(event: dict[str, Any]) -> list[str]:
    return [record["kinesis"]["sequenceNumber"] for record in event["Records"]]


def reported(response: BatchResponse) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def without_write_time(stored: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {
        key: {k: v for k, v in item.items() if k != "ingested_at"} for key, item in stored.items()
    }


def test_the_aggregated_sample_is_stored_trade_by_trade(resources: Resources) -> None:
    # GIVEN the sample: an aggregate of ours (4 trades, AAPL and MSFT), a plain record, and an
    # aggregate by aws-kinesis-agg of 3 plain Finnhub trades (no id, no rt)
    event = sample("kinesis_hotstore_aggregated.json")

    # WHEN the function handles it
    response, figures = process(event)

    # THEN the 8 trades are 8 items, nothing reported or dead-lettered
    assert response == {"batchItemFailures": []}
    assert dlq_bodies(resources) == []
    stored = items(resources)
    assert len(stored) == 8
    assert {s for s, _ in stored} == {"AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT", "BINANCE:ETHUSDT"}
    # AND the plain trades of aws-kinesis-agg's aggregate have the edge's ids and, as rt, the
    # arrival time of the aggregate that carried them
    btc = {"s": "BINANCE:BTCUSDT", "p": 64950.12, "v": 0.0213, "t": 1718900000140}
    (edge,) = stamp([parse_raw(btc)], received_ms=0)
    item = stored["BINANCE:BTCUSDT", f"1718900000140#{edge.id}"]
    assert item["rt"] == 1718900000171
    # AND the figures count user records and Kinesis records apart
    assert (figures["RecordsReceived"], figures["KinesisRecordsReceived"]) == (8, 3)
    assert figures["ItemsWritten"] == 8


def test_aggregates_of_ours_and_of_aws_kinesis_agg_among_plain_records_are_all_stored(
    resources: Resources,
) -> None:
    # GIVEN 90 distinct trades: 30 in one aggregate of ours, 30 in aggregates by aws-kinesis-agg
    # (cut at 2 KiB, so several), 30 as plain records, in one event
    trades = distinct_trades(90)
    aggregated_by_us = ours(trade_records(trades[:30]))
    aggregated_by_them = theirs(trade_records(trades[30:60]), max_bytes=2048)
    assert len(aggregated_by_them) > 1
    event = kinesis_event([aggregated_by_us, *aggregated_by_them, *trade_records(trades[60:])])

    # WHEN the function handles it
    response, figures = process(event)

    # THEN every trade is one item under its own id, none poison, none reported
    assert response == {"batchItemFailures": []}
    assert dlq_bodies(resources) == []
    stored = items(resources)
    assert {item["id"] for item in stored.values()} == {trade.id for trade in trades}
    assert len(stored) == 90
    kinesis_records = 1 + len(aggregated_by_them) + 30
    assert (figures["RecordsReceived"], figures["KinesisRecordsReceived"]) == (90, kinesis_records)
    assert (figures["ItemsWritten"], figures["DuplicatesSkipped"]) == (90, 0)
    assert figures["BatchWriteCalls"] == 4  # ceil(90 / 25): user records batch like any others

    # AND they are exactly the items the same trades make as plain records: putting those over
    # them changes nothing but the write times
    aggregated = without_write_time(stored)
    plain, _ = process(trades_event(trades))
    assert plain == {"batchItemFailures": []}
    assert without_write_time(items(resources)) == aggregated


def test_a_poison_user_record_goes_to_the_dlq_alone_and_the_rest_of_its_aggregate_is_stored(
    resources: Resources,
) -> None:
    # GIVEN an aggregate of three trades and two poison user records, under their own keys
    users = [GOOD[0], ("TSLA", NOT_JSON), GOOD[1], ("NVDA", PING), GOOD[2]]
    key, data = ours(users)
    event = kinesis_event([(key, data)])
    (sequence,) = sequences(event)

    # WHEN the function handles it
    response, figures = process(event)

    # THEN the three trades are stored and nothing is reported (the poison is kept, not retried)
    assert response == {"batchItemFailures": []}
    assert len(items(resources)) == 3
    # AND each poison user record has its own message: the aggregate's position, its own
    # sub-sequence number, key and data
    bodies = sorted(dlq_bodies(resources), key=lambda body: body["subSequenceNumber"])
    assert [(b["reason"], b["subSequenceNumber"], b["partitionKey"]) for b in bodies] == [
        ("InvalidJson", 1, "TSLA"),
        ("InvalidTrade", 3, "NVDA"),
    ]
    assert [base64.b64decode(b["data"]) for b in bodies] == [NOT_JSON, PING]
    assert {(b["shardId"], b["sequenceNumber"]) for b in bodies} == {
        ("shardId-000000000000", sequence)
    }
    names = list(bodies[0])  # the sub-sequence number right after the sequence number
    assert names.index("subSequenceNumber") == names.index("sequenceNumber") + 1
    # AND the figures reconcile in user records
    assert (figures["RecordsReceived"], figures["KinesisRecordsReceived"]) == (5, 1)
    assert (figures["PoisonRecords"], figures["DlqMessages"], figures["ItemsWritten"]) == (2, 2, 3)


def test_a_corrupt_aggregate_is_poison_whole_and_kept_as_received(resources: Resources) -> None:
    # GIVEN a corrupt aggregate between two plain trades
    event = kinesis_event([GOOD[0], ("AAPL", corrupt_aggregate()), GOOD[1]])

    # WHEN the function handles it
    response, figures = process(event)

    # THEN the trades are stored and the aggregate is one message, its bytes as received
    assert response == {"batchItemFailures": []}
    assert len(items(resources)) == 2
    (body,) = dlq_bodies(resources)
    assert body["reason"] == "KplAggregateCorrupt"
    assert body["sequenceNumber"] == sequences(event)[1]
    assert "subSequenceNumber" not in body
    assert body["data"] == event["Records"][1]["kinesis"]["data"]
    assert base64.b64decode(body["data"]) == corrupt_aggregate()
    assert (figures["RecordsReceived"], figures["PoisonRecords"]) == (3, 1)


def test_a_write_failing_inside_an_aggregate_reports_the_aggregate_and_redelivery_adds_nothing(
    resources: Resources, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one write attempt, DynamoDB behind a proxy throttling the next BatchWriteItem, and an
    # aggregate of 30 trades followed by 5 plain ones (calls of 25 and 10: the first holds only
    # the aggregate's trades)
    monkeypatch.setenv("MAX_WRITE_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
    hotstore_handler.reset()
    trades = distinct_trades(35)
    event = kinesis_event([ours(trade_records(trades[:30])), *trade_records(trades[30:])])
    proxy.throttle_next("BatchWriteItem", 1)

    # WHEN the function handles it
    response, figures = process(event)

    # THEN exactly the aggregate's own sequence number is reported, once
    assert proxy.injected["BatchWriteItem:ThrottlingException"] == 1
    assert reported(response) == sequences(event)[:1]
    assert (figures["ItemsFailed"], figures["BatchItemFailures"]) == (25, 1)
    # AND what the other call wrote is stored: 5 of the aggregate's trades and the 5 plain ones
    assert {i["id"] for i in items(resources).values()} == {t.id for t in trades[25:]}

    # WHEN the mapping redelivers from the aggregate on (all of this batch), and once more
    again, _ = process(event)
    after_redelivery = items(resources)
    once_more, _ = process(event)

    # THEN all 35 trades are stored, and the second redelivery changed nothing but write times
    assert again == once_more == {"batchItemFailures": []}
    assert {i["id"] for i in after_redelivery.values()} == {t.id for t in trades}
    assert without_write_time(items(resources)) == without_write_time(after_redelivery)
    assert dlq_bodies(resources) == []


def test_a_poison_user_record_the_dlq_cannot_take_reports_its_aggregate(
    resources: Resources, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN SQS answering every call with 503, and a plain trade then an aggregate holding poison
    proxy.down = True
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
    hotstore_handler.reset()
    event = kinesis_event([GOOD[0], ours([GOOD[1], ("TSLA", NOT_JSON), GOOD[2]])])

    # WHEN the function handles it
    response, figures = process(event)

    # THEN the aggregate is reported for redelivery (the poison is never dropped), the plain
    # record is not, and every trade was written anyway
    assert reported(response) == sequences(event)[1:]
    assert len(items(resources)) == 3
    assert (figures["DlqFailures"], figures["BatchItemFailures"]) == (1, 1)
