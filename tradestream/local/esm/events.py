"""The shapes the Kinesis event source mapping exchanges with the function and the destination.

- the invocation event (``{"Records": [...]}``, exactly AWS's keys and types),
- the function's partial batch response, read the way Lambda reads it,
- the on-failure record sent to the destination (batch metadata, never the data).

Pure functions over ``StreamRecord``; no I/O here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

# Synchronous invocation payload limit (request), which caps how many records fit in one batch.
EVENT_ENVELOPE_BYTES = len('{"Records":[]}')

FailureCondition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]


@dataclass(frozen=True)
class StreamRecord:
    """One Kinesis record as GetRecords returned it, plus its size inside an event."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival: float  # ApproximateArrivalTimestamp, epoch seconds
    event_bytes: int = field(default=0, compare=False)

    @property
    def position(self) -> int:
        # Sequence numbers are decimal strings of up to 128 bits; compare them as integers.
        return int(self.sequence_number)


@dataclass(frozen=True)
class KinesisEventSource:
    """What every record of one mapping's events shares."""

    stream_arn: str
    region: str
    invoke_identity_arn: str


def from_get_records(
    shard_id: str, raw: Mapping[str, Any], source: KinesisEventSource
) -> StreamRecord:
    """Turn one boto3 GetRecords entry into a StreamRecord, measuring its event size once."""
    arrival = raw["ApproximateArrivalTimestamp"]
    record = StreamRecord(
        shard_id=shard_id,
        sequence_number=raw["SequenceNumber"],
        partition_key=raw["PartitionKey"],
        data=bytes(raw["Data"]),
        arrival=arrival.timestamp() if isinstance(arrival, datetime) else float(arrival),
    )
    size = len(_dumps(event_record(record, source))) + 1  # + the separating comma
    return replace(record, event_bytes=size)


def event_record(record: StreamRecord, source: KinesisEventSource) -> dict[str, Any]:
    """One entry of the event's ``Records``, with AWS's keys in AWS's order."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": record.sequence_number,
            "data": base64.b64encode(record.data).decode("ascii"),
            "approximateArrivalTimestamp": round(record.arrival, 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{record.shard_id}:{record.sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": source.invoke_identity_arn,
        "awsRegion": source.region,
        "eventSourceARN": source.stream_arn,
    }


def kinesis_event(records: Sequence[StreamRecord], source: KinesisEventSource) -> dict[str, Any]:
    """A fresh event per invocation: Lambda hands every attempt newly parsed JSON."""
    return {"Records": [event_record(record, source) for record in records]}


# --- the function's answer ---------------------------------------------------------------------

OutcomeKind = Literal["success", "partial", "function_error", "invalid_response"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    failed_sequence: str | None = None  # lowest reported failure, for "partial"
    reported_failures: int = 0
    response_context: Mapping[str, Any] = field(default_factory=dict)


def response_context(*, function_error: bool) -> dict[str, Any]:
    # A stream invocation that ran reports 200; an exception or timeout sets "Unhandled".
    return {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled" if function_error else None,
    }


def function_error() -> Outcome:
    return Outcome("function_error", response_context=response_context(function_error=True))


def read_batch_response(
    response: Any, records: Sequence[StreamRecord], *, report_batch_item_failures: bool
) -> Outcome:
    """Read a function's return value as Lambda does for a Kinesis batch.

    Without ReportBatchItemFailures any return value means success. With it, a null or empty
    response or ``batchItemFailures`` list is success; identifiers that are missing, empty, not
    strings or not in the batch make the whole response invalid, which is a complete failure.
    """
    ok = response_context(function_error=False)
    if not report_batch_item_failures or response is None:
        return Outcome("success", response_context=ok)
    if not isinstance(response, Mapping):
        return Outcome("invalid_response", response_context=ok)
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return Outcome("success", response_context=ok)
    if not isinstance(failures, list):
        return Outcome("invalid_response", response_context=ok)
    in_batch = {record.sequence_number: record.position for record in records}
    positions = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in in_batch:
            return Outcome("invalid_response", response_context=ok)
        positions.append((in_batch[identifier], identifier))
    # Lambda checkpoints at the lowest failed sequence number and retries from there.
    _, lowest = min(positions)
    return Outcome("partial", lowest, len(failures), ok)


# --- the on-failure destination ----------------------------------------------------------------


def on_failure_record(
    *,
    records: Sequence[StreamRecord],
    condition: FailureCondition,
    invoke_count: int,
    last_response: Mapping[str, Any] | None,
    request_id: str,
    function_arn: str,
    stream_arn: str,
    now: float,
) -> dict[str, Any]:
    """The metadata Lambda sends for a discarded Kinesis batch; the records stay in the stream.

    ``responseContext`` describes the last invocation; records discarded for age before any
    invocation have none, so the key is left out.
    """
    first, last = records[0], records[-1]
    record: dict[str, Any] = {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
    }
    if last_response is not None:
        record["responseContext"] = dict(last_response)
    record["version"] = "1.0"
    record["timestamp"] = iso_millis(now)
    record["KinesisBatchInfo"] = {
        "shardId": first.shard_id,
        "startSequenceNumber": first.sequence_number,
        "endSequenceNumber": last.sequence_number,
        "approximateArrivalOfFirstRecord": iso_millis(first.arrival),
        "approximateArrivalOfLastRecord": iso_millis(last.arrival),
        "batchSize": len(records),
        "streamArn": stream_arn,
    }
    return record


def iso_millis(epoch_s: float) -> str:
    """``2019-11-14T00:38:06.021Z``, the timestamp format of on-failure records."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
