"""Reading the Firehose transformation event, with and without its optional fields, and the
shapes of the answers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from lambdas.enrich.firehose import (
    InvalidEventError,
    dropped,
    ok,
    processing_failed,
    read_batch,
    response,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"


def test_the_sample_event_from_a_kinesis_source_parses_completely() -> None:
    # GIVEN AWS's event for a Kinesis-sourced delivery stream
    event = json.loads((EVENTS / "firehose_enrich_batch.json").read_text())

    # WHEN read
    batch = read_batch(event)

    # THEN every record and field is there
    assert batch.event.invocation_id == event["invocationId"]
    assert batch.event.delivery_stream_arn.endswith(":deliverystream/tradestream-lake")
    assert batch.event.source_kinesis_stream_arn == event["sourceKinesisStreamArn"]
    assert batch.event.region == "us-east-1"
    assert [r.record_id for r in batch.records] == [r["recordId"] for r in event["records"]]
    first = batch.records[0]
    assert first.approximate_arrival_timestamp == 1718900000163
    assert first.metadata is not None
    assert (first.metadata.shard_id, first.metadata.partition_key) == (
        "shardId-000000000000",
        "AAPL",
    )
    assert batch.unanswerable == 0


def test_an_event_with_only_records_parses() -> None:
    # GIVEN an event without invocationId, ARNs, region or record metadata
    batch = read_batch(json.loads((EVENTS / "firehose_enrich_minimal.json").read_text()))

    # THEN its records are all there and the optional fields are absent
    assert [r.record_id for r in batch.records] == ["record-1", "record-2", "record-3"]
    assert batch.event.get("invocationId") is None
    assert batch.event.source_kinesis_stream_arn is None
    assert all(r.metadata is None for r in batch.records)


def test_records_broken_around_their_data_are_kept_to_be_answered() -> None:
    # GIVEN a record with no data, one with a bad timestamp, and one with no recordId
    event = {
        "records": [
            {"recordId": "no-data"},
            {"recordId": "bad-ts", "approximateArrivalTimestamp": "soon", "data": "eyJ9"},
            {"data": "eyJ9"},
            "not an object",
        ]
    }

    # WHEN read
    batch = read_batch(event)

    # THEN the two with a recordId are kept (to be answered), the other two are counted
    assert [(r.record_id, r.data) for r in batch.records] == [("no-data", ""), ("bad-ts", "eyJ9")]
    assert batch.unanswerable == 2


@pytest.mark.parametrize("event", [{}, {"records": "x"}, {"Records": []}, [{"records": []}]])
def test_an_event_without_a_records_list_is_refused(event: object) -> None:
    # GIVEN something that is not a Firehose event WHEN read THEN it is refused
    with pytest.raises(InvalidEventError, match="records"):
        read_batch(event)


def test_the_answers_have_firehoses_shapes() -> None:
    # GIVEN three records of a batch
    event = json.loads((EVENTS / "firehose_enrich_minimal.json").read_text())
    first, second, third = read_batch(event).records

    # WHEN answered Ok (with partition keys), Dropped and ProcessingFailed
    answered = response(
        [ok(first, b"line\n", {"symbol": "AAPL"}), dropped(second), processing_failed(third)]
    )

    # THEN Ok carries the new data in base64 and the keys; the others send back what came
    assert answered == {
        "records": [
            {
                "recordId": "record-1",
                "result": "Ok",
                "data": base64.b64encode(b"line\n").decode(),
                "metadata": {"partitionKeys": {"symbol": "AAPL"}},
            },
            {"recordId": "record-2", "result": "Dropped", "data": event["records"][1]["data"]},
            {
                "recordId": "record-3",
                "result": "ProcessingFailed",
                "data": event["records"][2]["data"],
            },
        ]
    }


def test_a_batch_without_an_answerable_record_is_answered_with_no_records() -> None:
    # GIVEN only a record without recordId WHEN read and answered THEN the response is empty
    # (Firehose fails and retries such a batch), where Powertools' own response would raise
    batch = read_batch({"records": [{"data": "eyJ9"}]})
    assert batch.unanswerable == 1
    assert response(processing_failed(r) for r in batch.records) == {"records": []}
