"""Reading the Firehose transformation event, with and without its optional fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambdas.enrich.firehose import FirehoseEvent, InvalidEventError

EVENTS = Path(__file__).resolve().parents[1] / "events"


def test_the_sample_event_from_a_kinesis_source_parses_completely() -> None:
    # GIVEN AWS's event for a Kinesis-sourced delivery stream
    event = json.loads((EVENTS / "firehose_enrich_batch.json").read_text())

    # WHEN parsed
    parsed = FirehoseEvent.parse(event)

    # THEN every record and field is there
    assert parsed.invocation_id == event["invocationId"]
    assert parsed.delivery_stream_arn.endswith(":deliverystream/tradestream-lake")  # type: ignore[union-attr]
    assert parsed.source_kinesis_stream_arn == event["sourceKinesisStreamArn"]
    assert parsed.region == "us-east-1"
    assert [r.record_id for r in parsed.records] == [r["recordId"] for r in event["records"]]
    first = parsed.records[0]
    assert first.approximate_arrival_ms == 1718900000163
    assert first.metadata is not None
    assert (first.metadata.shardId, first.metadata.partitionKey) == ("shardId-000000000000", "AAPL")
    assert parsed.unanswerable == 0


def test_an_event_with_only_records_parses() -> None:
    # GIVEN an event without invocationId, ARNs, region or record metadata
    parsed = FirehoseEvent.parse(json.loads((EVENTS / "firehose_enrich_minimal.json").read_text()))

    # THEN its records are all there and the optional fields are None
    assert [r.record_id for r in parsed.records] == ["record-1", "record-2", "record-3"]
    assert parsed.invocation_id is None
    assert parsed.delivery_stream_arn is None
    assert all(r.metadata is None for r in parsed.records)


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

    # WHEN parsed
    parsed = FirehoseEvent.parse(event)

    # THEN the two with a recordId are kept (to be answered), the other two are counted
    assert [(r.record_id, r.data) for r in parsed.records] == [("no-data", ""), ("bad-ts", "eyJ9")]
    assert parsed.unanswerable == 2


@pytest.mark.parametrize("event", [{}, {"records": "x"}, {"Records": []}])
def test_an_event_without_a_records_list_is_refused(event: dict[str, object]) -> None:
    # GIVEN something that is not a Firehose event WHEN parsed THEN it is refused
    with pytest.raises(InvalidEventError, match="records"):
        FirehoseEvent.parse(event)
