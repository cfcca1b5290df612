"""The Firehose emulation's event, response checks and error envelope (pure functions)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.kpl import corrupt_aggregate, theirs
from tradestream.limits import LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from tradestream.local.firehose.events import (
    DUPLICATED_RECORD_ID,
    EVENT_ENVELOPE_BYTES,
    JSON_PROCESSING,
    MISSING_PARTITION_KEY,
    MISSING_RECORD_ID,
    PROCESSING_FAILED_STATUS,
    BatchFailure,
    DeliveryStreamSource,
    RecordOutcome,
    SourceRecord,
    error_envelope,
    from_get_records,
    read_transformation_response,
    transformation_event,
)
from tradestream.local.lambda_runtime import records_within_payload

EVENTS = Path(__file__).parents[1] / "events"
SOURCE = DeliveryStreamSource(
    delivery_stream_arn="arn:aws:firehose:us-east-1:123456789012:deliverystream/lake",
    source_stream_arn="arn:aws:kinesis:us-east-1:123456789012:stream/trades",
    region="us-east-1",
)


def record(n: int, data: bytes = b"{}") -> SourceRecord:
    raw = {
        "SequenceNumber": f"4965426301384520943247958321049506358246104910254140{n:04d}",
        "PartitionKey": "AAPL",
        "Data": data,
        "ApproximateArrivalTimestamp": datetime(2024, 6, 20, 10, 0, 0, 163000, tzinfo=UTC),
    }
    (read,) = from_get_records("shardId-000000000001", raw)
    return read


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_event_has_aws_keys_and_types_for_a_kinesis_source() -> None:
    # GIVEN one record read from shard 1
    source = record(7, b'{"s":"AAPL"}')

    # WHEN the event is built
    event = transformation_event([source], SOURCE, "inv-1")

    # THEN it is AWS's shape, key for key
    assert list(event) == [
        "invocationId", "sourceKinesisStreamArn", "deliveryStreamArn", "region", "records",
    ]  # fmt: skip
    assert event["invocationId"] == "inv-1"
    assert event["sourceKinesisStreamArn"] == SOURCE.source_stream_arn
    assert event["deliveryStreamArn"] == SOURCE.delivery_stream_arn
    (entry,) = event["records"]
    assert list(entry) == [
        "recordId",
        "approximateArrivalTimestamp",
        "data",
        "kinesisRecordMetadata",
    ]
    assert entry["recordId"] == source.record_id
    assert entry["approximateArrivalTimestamp"] == 1718877600163
    assert base64.b64decode(entry["data"]) == b'{"s":"AAPL"}'
    assert entry["kinesisRecordMetadata"] == {
        "shardId": "shardId-000000000001",
        "partitionKey": "AAPL",
        "approximateArrivalTimestamp": 1718877600163,
        "sequenceNumber": source.sequence_number,
        "subsequenceNumber": 0,
    }
    # AND the measured size is the record's share of the serialised event
    assert source.event_bytes == len(json.dumps(entry, separators=(",", ":"))) + 1


def test_records_are_split_before_the_6_mb_request_limit() -> None:
    # GIVEN records of 1 MiB of data each (about 1.33 MiB once base64 in the event)
    records = [record(i, b"x" * (1024 * 1024)) for i in range(6)]

    # WHEN the leading records that fit one request are counted
    fitting = records_within_payload(records, EVENT_ENVELOPE_BYTES)

    # THEN four fit (5.3 MiB) and a fifth would pass 6 MiB
    assert fitting == 4
    assert sum(r.event_bytes for r in records[:4]) < MAX_PAYLOAD_BYTES
    assert sum(r.event_bytes for r in records[:5]) > MAX_PAYLOAD_BYTES
    # AND a single record always fits a batch of its own
    assert records_within_payload([record(0, b"x" * 7 * 1024 * 1024)], EVENT_ENVELOPE_BYTES) == 1


def answer(source: SourceRecord, result: str = "Ok", **extra: Any) -> dict[str, Any]:
    return {"recordId": source.record_id, "result": result, "data": b64(b"out\n"), **extra}


def test_a_valid_response_gives_one_outcome_per_record_in_order() -> None:
    # GIVEN three records answered Ok (with keys), Dropped and ProcessingFailed, out of order
    a, b, c = record(1), record(2), record(3)
    keys = {"partitionKeys": {"symbol": "AAPL", "date": "2024-06-20"}}
    response = {
        "records": [
            answer(c, "ProcessingFailed"),
            answer(a, metadata=keys),
            answer(b, "Dropped"),
        ]
    }

    # WHEN interpreted with the lake's partition keys
    outcomes = read_transformation_response(response, [a, b, c], partition_keys=("symbol", "date"))

    # THEN the outcomes follow the input order
    assert outcomes == [
        RecordOutcome(a, "ok", b"out\n", {"symbol": "AAPL", "date": "2024-06-20"}),
        RecordOutcome(b, "dropped"),
        RecordOutcome(c, "failed", error=PROCESSING_FAILED_STATUS),
    ]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, JSON_PROCESSING),
        ({"records": "nope"}, JSON_PROCESSING),
        ({"records": [{"result": "Ok", "data": ""}]}, JSON_PROCESSING),
        ("answers", JSON_PROCESSING),
    ],
    ids=["null", "records-not-a-list", "no-record-id", "not-an-object"],
)
def test_a_response_outside_the_status_model_fails_the_batch(
    response: Any, expected: tuple[str, str]
) -> None:
    # GIVEN a malformed response WHEN interpreted THEN the whole batch fails with the code
    assert read_transformation_response(response, [record(1)]) == BatchFailure(*expected)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (lambda a, b: [answer(a)], MISSING_RECORD_ID),
        (lambda a, b: [answer(a), answer(b), answer(a)], DUPLICATED_RECORD_ID),
        (lambda a, b: [answer(a), answer(b), {**answer(a), "recordId": "x"}], JSON_PROCESSING),
        (lambda a, b: [answer(a), answer(b, "Maybe")], JSON_PROCESSING),
        (lambda a, b: [answer(a), {**answer(b), "data": "not base64!"}], JSON_PROCESSING),
        (lambda a, b: [answer(a), {"recordId": b.record_id, "result": "Ok"}], JSON_PROCESSING),
    ],
    ids=["missing", "duplicated", "unknown", "bad-result", "bad-base64", "ok-without-data"],
)
def test_every_record_must_be_answered_exactly_once_with_a_valid_result(
    entries: Any, expected: tuple[str, str]
) -> None:
    # GIVEN two records and an answer that breaks the rules WHEN interpreted THEN batch fails
    a, b = record(1), record(2)
    assert read_transformation_response({"records": entries(a, b)}, [a, b]) == BatchFailure(
        *expected
    )


def test_dropped_and_failed_records_need_no_data() -> None:
    # GIVEN answers without data for Dropped and ProcessingFailed WHEN interpreted THEN accepted
    a, b = record(1), record(2)
    response = {"records": [{"recordId": a.record_id, "result": "Dropped"},
                            {"recordId": b.record_id, "result": "ProcessingFailed"}]}  # fmt: skip
    outcomes = read_transformation_response(response, [a, b])
    assert isinstance(outcomes, list)
    assert [o.kind for o in outcomes] == ["dropped", "failed"]


def test_an_ok_record_without_a_needed_partition_key_fails_alone() -> None:
    # GIVEN the prefix needs symbol and date, and one Ok answer lacks date
    a, b = record(1), record(2)
    response = {
        "records": [
            answer(a, metadata={"partitionKeys": {"symbol": "AAPL", "date": "2024-06-20"}}),
            answer(b, metadata={"partitionKeys": {"symbol": "AAPL"}}),
        ]
    }

    # WHEN interpreted
    outcomes = read_transformation_response(response, [a, b], partition_keys=("symbol", "date"))

    # THEN only that record fails, naming the key
    assert isinstance(outcomes, list)
    assert outcomes[0].kind == "ok"
    assert outcomes[1].kind == "failed"
    assert outcomes[1].error is not None
    assert outcomes[1].error[0] == MISSING_PARTITION_KEY
    assert "date" in outcomes[1].error[1]


def test_the_error_envelope_is_firehoses_processing_failed_format() -> None:
    # GIVEN a record that failed WHEN enveloped
    source = record(5, b"not a trade")
    envelope = error_envelope(
        source,
        attempts_made=4,
        error=PROCESSING_FAILED_STATUS,
        attempt_ending_ms=1718877601000,
        lambda_arn="arn:aws:lambda:us-east-1:123456789012:function:enrich",
    )

    # THEN the keys, order and values are Firehose's
    assert envelope == {
        "attemptsMade": 4,
        "arrivalTimestamp": 1718877600163,
        "errorCode": "Lambda.ProcessingFailedStatus",
        "errorMessage": "ProcessingFailed status set for record",
        "attemptEndingTimestamp": 1718877601000,
        "rawData": b64(b"not a trade"),
        "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:enrich",
    }
    assert list(envelope) == [
        "attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
        "attemptEndingTimestamp", "rawData", "lambdaArn",
    ]  # fmt: skip


def test_record_ids_are_unique_across_shards_even_when_sequence_numbers_repeat() -> None:
    # GIVEN two shards whose records carry the same sequence number (moto numbers each from 1)
    raw = {
        "SequenceNumber": "1",
        "ApproximateArrivalTimestamp": 1_700_000_000.0,
        "Data": b"{}",
        "PartitionKey": "AAPL",
    }
    # WHEN Firehose reads one from each
    (first,) = from_get_records("shardId-000000000000", raw)
    (second,) = from_get_records("shardId-000000000001", raw)
    # THEN their recordIds differ, so the function answers each of them
    assert first.record_id != second.record_id


# --- KPL aggregates ----------------------------------------------------------------------------


def _get_records_entry(data: bytes, partition_key: str = "AAPL") -> dict[str, Any]:
    return {
        "SequenceNumber": "49654263013845209432479583210495063582461049102541406210",
        "PartitionKey": partition_key,
        "Data": data,
        "ApproximateArrivalTimestamp": datetime(2024, 6, 20, 10, 0, 0, 163000, tzinfo=UTC),
    }


def test_an_aggregate_is_one_event_record_per_user_record_as_firehose_sends_them() -> None:
    # GIVEN a KPL aggregate of three user records under two partition keys (made by
    # aws-kinesis-agg, as a KPL-format producer writes it)
    users = [("AAPL", b'{"n":0}'), ("MSFT", b'{"n":1}'), ("AAPL", b'{"n":2}')]
    ((key, data),) = theirs(users)

    # WHEN Firehose reads it and builds the transformation event
    read = from_get_records("shardId-000000000001", _get_records_entry(data, key))
    event = transformation_event(read, SOURCE, "inv-1")

    # THEN each user record is one event record: its own data, partition key and subsequence
    # number, the aggregate's sequence number and arrival time, a recordId of its own
    entries = event["records"]
    assert [base64.b64decode(e["data"]) for e in entries] == [d for _, d in users]
    metadata = [e["kinesisRecordMetadata"] for e in entries]
    assert [(m["partitionKey"], m["subsequenceNumber"]) for m in metadata] == [
        ("AAPL", 0),
        ("MSFT", 1),
        ("AAPL", 2),
    ]
    assert {m["sequenceNumber"] for m in metadata} == {read[0].sequence_number}
    assert {e["approximateArrivalTimestamp"] for e in entries} == {1718877600163}
    assert len({e["recordId"] for e in entries}) == 3
    # AND an answer naming every recordId is read back per user record
    outcomes = read_transformation_response({"records": [answer(source) for source in read]}, read)
    assert not isinstance(outcomes, BatchFailure)
    assert [o.record.subsequence_number for o in outcomes] == [0, 1, 2]


def test_the_aggregated_sample_has_awss_keys_and_types_record_for_record() -> None:
    # GIVEN AWS's sample of a Kinesis-sourced event and the sample of aggregated records
    aws_sample = json.loads((EVENTS / "firehose_enrich_batch.json").read_text())
    aggregated = json.loads((EVENTS / "firehose_enrich_aggregated.json").read_text())

    # THEN every record of the aggregated one has AWS's keys, in order, with AWS's types
    def shape(entry: dict[str, Any]) -> list[tuple[str, type]]:
        metadata = entry["kinesisRecordMetadata"]
        return [(k, type(v)) for k, v in entry.items()] + [
            (k, type(v)) for k, v in metadata.items()
        ]

    (expected,) = {tuple(shape(e)) for e in aws_sample["records"]}
    assert {tuple(shape(e)) for e in aggregated["records"]} == {expected}
    # AND it holds 8 user records of 3 Kinesis records, recordIds unique
    records = aggregated["records"]
    assert len(records) == 8
    assert len({r["kinesisRecordMetadata"]["sequenceNumber"] for r in records}) == 3
    assert len({r["recordId"] for r in records}) == 8


def test_a_corrupt_aggregate_goes_to_the_transform_as_the_one_record_it_is() -> None:
    # GIVEN the KPL magic and digest around a message that does not parse
    (read,) = from_get_records("shardId-000000000001", _get_records_entry(corrupt_aggregate()))

    # THEN it is handed over whole, for the transform to fail into the error prefix
    assert (read.data, read.subsequence_number) == (corrupt_aggregate(), 0)
