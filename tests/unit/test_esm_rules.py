"""The mapping's pure rules (response reading, settling, batching), without any endpoint.

They need no network, so they would sit in tests/unit; they live here beside the functional
mapping tests they complement.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tradestream.limits import LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from tradestream.local.esm.events import (
    EVENT_ENVELOPE_BYTES,
    KinesisEventSource,
    StreamRecord,
    from_get_records,
    function_error,
    iso_millis,
    read_batch_response,
)
from tradestream.local.esm.settings import MappingSettings
from tradestream.local.esm.state import Batch, MappingShard, settle, split_expired
from tradestream.local.lambda_runtime import records_within_payload

SOURCE = KinesisEventSource(
    stream_arn="arn:aws:kinesis:us-east-1:123456789012:stream/trades",
    region="us-east-1",
    invoke_identity_arn="arn:aws:iam::123456789012:role/hotstore",
)


def _records(count: int, *, size: int = 10, arrival: float = 1_700_000_000.0) -> list[StreamRecord]:
    return [
        from_get_records(
            "shardId-000000000000",
            {
                "SequenceNumber": str(1000 + i),
                "PartitionKey": "AAPL",
                "Data": b"x" * size,
                "ApproximateArrivalTimestamp": arrival + i,
            },
            SOURCE,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    "response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}]
)
def test_null_or_empty_responses_are_complete_successes(response: object) -> None:
    # GIVEN / WHEN a response Lambda documents as success THEN it is read as success
    outcome = read_batch_response(response, _records(3), report_batch_item_failures=True)
    assert outcome.kind == "success"


def test_the_lowest_reported_sequence_number_is_the_checkpoint() -> None:
    # GIVEN failures reported out of order, as numbers that sort differently as strings
    records = _records(3)
    response = {
        "batchItemFailures": [
            {"itemIdentifier": records[2].sequence_number},
            {"itemIdentifier": records[1].sequence_number},
        ]
    }

    # WHEN the response is read
    outcome = read_batch_response(response, records, report_batch_item_failures=True)

    # THEN the retry starts at the lowest one
    assert (outcome.kind, outcome.failed_sequence, outcome.reported_failures) == (
        "partial",
        records[1].sequence_number,
        2,
    )
    assert outcome.response_context == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": None,
    }


def test_sequence_numbers_compare_as_numbers_not_strings() -> None:
    # GIVEN two records whose sequence numbers sort the other way round as text
    low = replace(_records(1)[0], sequence_number="999")
    high = replace(_records(1)[0], sequence_number="1000")
    response = {"batchItemFailures": [{"itemIdentifier": "1000"}, {"itemIdentifier": "999"}]}

    # WHEN / THEN the numerically lowest is the checkpoint
    outcome = read_batch_response(response, [low, high], report_batch_item_failures=True)
    assert outcome.failed_sequence == "999"


def test_a_non_object_response_is_invalid_when_partial_responses_are_on() -> None:
    # GIVEN / WHEN / THEN a string answer cannot be a StreamsEventResponse
    outcome = read_batch_response("ok", _records(1), report_batch_item_failures=True)
    assert outcome.kind == "invalid_response"


def test_bisect_halves_keep_the_retry_count_and_do_not_spend_it() -> None:
    # GIVEN a four-record batch that failed once already
    settings = MappingSettings(bisect_batch_on_function_error=True, maximum_retry_attempts=1)
    batch = Batch(records=tuple(_records(4)), retries=1, invocations=2)

    # WHEN it fails again
    settlement = settle(batch, function_error(), settings)

    # THEN it is split in two halves with the same counters, to be tried at once
    first, second = settlement.next_batches
    assert [len(first), len(second)] == [2, 2]
    assert (first.retries, second.retries, first.invocations) == (1, 1, 2)
    assert settlement.bisected
    assert not settlement.retry_delay
    assert settlement.discard is None


def test_a_single_record_batch_is_retried_then_discarded() -> None:
    # GIVEN one failing record and one retry allowed
    settings = MappingSettings(bisect_batch_on_function_error=True, maximum_retry_attempts=1)
    batch = Batch(records=tuple(_records(1)))

    # WHEN it fails twice
    first = settle(batch, function_error(), settings)
    (retry,) = first.next_batches
    second = settle(retry, function_error(), settings)

    # THEN the first failure retries it, the second discards it
    assert (retry.retries, first.retry_delay) == (1, True)
    assert second.discard == retry
    assert second.next_batches == ()


def test_infinite_retries_never_discard() -> None:
    # GIVEN MaximumRetryAttempts -1 and a batch retried 10,000 times
    batch = Batch(records=tuple(_records(1)), retries=10_000)

    # WHEN / THEN it is retried again
    assert settle(batch, function_error(), MappingSettings()).next_batches[0].retries == 10_001


def test_expired_leading_records_are_split_off() -> None:
    # GIVEN records arriving at t, t+1, t+2 and a 60 s maximum age, evaluated at t+61.5
    records = _records(3)
    now = records[0].arrival + 61.5

    # WHEN the batch is checked
    old, live = split_expired(Batch(records=tuple(records)), now, 60)

    # THEN the records older than 60 s lead, the rest stay invocable
    assert old is not None
    assert live is not None
    assert [r.sequence_number for r in old.records] == [
        records[0].sequence_number,
        records[1].sequence_number,
    ]
    assert [r.sequence_number for r in live.records] == [records[2].sequence_number]


def test_the_6mb_payload_limit_caps_a_batch_before_batch_size() -> None:
    # GIVEN five 1 MiB records (about 1.4 MB each once base64-encoded in the event)
    records = _records(5, size=1024 * 1024)
    shard = MappingShard("shardId-000000000000")
    shard.add_fetched(records, now=0.0)

    # WHEN a batch is taken with room for 100 records
    batch = shard.take_batch(0.0, MappingSettings(batch_size=100))

    # THEN it holds only what fits in 6 MB, and the rest waits for the next batch
    assert batch is not None
    assert len(batch) == 4 == records_within_payload(records, EVENT_ENVELOPE_BYTES)
    assert sum(r.event_bytes for r in batch.records) < MAX_PAYLOAD_BYTES
    assert list(shard.buffer) == records[4:]


def test_on_failure_timestamps_are_iso_with_milliseconds() -> None:
    # GIVEN / WHEN / THEN an epoch time renders like AWS's on-failure records
    assert iso_millis(1573691886.021) == "2019-11-14T00:38:06.021Z"
