"""The shapes the Firehose emulation exchanges with the transform function and writes to S3.

- the records of the transformation event: a Kinesis record read from the source is opened into
  its user records first when it is a KPL aggregate (``tradestream.kpl``), as Firehose does for a
  Kinesis source; each user record is one event record with its own ``recordId``, its own
  partition key, the aggregate's sequence number and arrival time, and its subsequence number;
- the transformation event, exactly AWS's keys and types for a Kinesis-sourced delivery stream;
- the function's response, checked as Firehose checks it (every recordId answered exactly once,
  a valid result, base64 data for Ok, partition keys when the prefix needs them);
- the error output envelope of a record that failed processing.

Pure functions over ``SourceRecord``; no I/O here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from tradestream.kpl import AggregateFormatError, UserRecord, deaggregate
from tradestream.limits import FIREHOSE_TRANSFORM_MAX_PAYLOAD_BYTES

RESULTS = ("Ok", "Dropped", "ProcessingFailed")

# (errorCode, errorMessage) as Firehose writes them in the error envelope.
PROCESSING_FAILED_STATUS = (
    "Lambda.ProcessingFailedStatus",
    "ProcessingFailed status set for record",
)
MISSING_RECORD_ID = (
    "Lambda.MissingRecordId",
    "One or more record Ids were not returned. Ensure that the Lambda function returns all "
    "received record Ids.",
)
DUPLICATED_RECORD_ID = (
    "Lambda.DuplicatedRecordId",
    "Multiple records were returned with the same record Id. Ensure that the Lambda function "
    "returns a unique record Id for each record.",
)
JSON_PROCESSING = (
    "Lambda.JsonProcessingException",
    "There was an error parsing returned records from the Lambda function. Ensure that the "
    "returned records follow the status model required by Kinesis Data Firehose.",
)
FUNCTION_ERROR = (
    "Lambda.FunctionError",
    "The Lambda function was successfully invoked but it returned an error result.",
)
FUNCTION_TIMED_OUT = (
    "Lambda.FunctionTimedOut",
    "The Lambda function invocation timed out. Increase the Timeout setting in the Lambda "
    "function.",
)
MISSING_PARTITION_KEY = "DynamicPartitioning.MetadataExtractionFailed"

EVENT_ENVELOPE_BYTES = 512  # invocationId, the three ARNs and region, generously


@dataclass(frozen=True)
class SourceRecord:
    """One user record as Firehose read it (a Kinesis record, or one record of a KPL aggregate),
    plus its size inside a transformation event."""

    record_id: str
    shard_id: str
    sequence_number: str  # the Kinesis record's: an aggregate's user records share it
    partition_key: str  # the user record's own
    data: bytes
    arrival_ms: int  # the Kinesis ApproximateArrivalTimestamp, epoch ms
    subsequence_number: int = 0  # its position in the aggregate; 0 for a plain record
    event_bytes: int = field(default=0, compare=False)


def from_get_records(shard_id: str, raw: Mapping[str, Any]) -> list[SourceRecord]:
    """The records one boto3 GetRecords entry gives the transform, each measured once for its
    event size: a KPL aggregate's user records in order, any other record as itself.

    A corrupt aggregate (the KPL magic and digest, a message that does not parse) goes to the
    transform as the one record it is, so it fails there and is kept under the error prefix
    rather than lost; what Firehose itself does with one is not documented.
    """
    arrival = raw["ApproximateArrivalTimestamp"]
    seconds = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
    sequence = str(raw["SequenceNumber"])
    partition_key = str(raw["PartitionKey"])
    data = bytes(raw["Data"])
    try:
        users = deaggregate(data, partition_key)
    except AggregateFormatError:
        users = [UserRecord(partition_key, data)]
    arrival_ms = round(seconds * 1000)
    return [_source_record(shard_id, sequence, arrival_ms, user) for user in users]


def _source_record(shard_id: str, sequence: str, arrival_ms: int, user: UserRecord) -> SourceRecord:
    record = SourceRecord(
        # Opaque to the function; unique per (shard, record, user record of a KPL aggregate).
        # The shard is part of it because sequence numbers need not be unique across shards
        # (moto numbers each shard from 1), and the subsequence number because an aggregate's
        # user records share its sequence number: a repeated recordId makes the function answer
        # only once for two records.
        record_id=f"{shard_id.rsplit('-', 1)[-1]:0>12}{sequence}{user.sub_sequence_number:012d}",
        shard_id=shard_id,
        sequence_number=sequence,
        partition_key=user.partition_key,
        data=user.data,
        arrival_ms=arrival_ms,
        subsequence_number=user.sub_sequence_number,
    )
    size = len(_dumps(event_record(record))) + 1  # + the separating comma
    return replace(record, event_bytes=size)


def event_record(record: SourceRecord) -> dict[str, Any]:
    return {
        "recordId": record.record_id,
        "approximateArrivalTimestamp": record.arrival_ms,
        "data": base64.b64encode(record.data).decode("ascii"),
        "kinesisRecordMetadata": {
            "shardId": record.shard_id,
            "partitionKey": record.partition_key,
            "approximateArrivalTimestamp": record.arrival_ms,
            "sequenceNumber": record.sequence_number,
            "subsequenceNumber": record.subsequence_number,
        },
    }


@dataclass(frozen=True)
class DeliveryStreamSource:
    """What every transformation event of one delivery stream shares."""

    delivery_stream_arn: str
    source_stream_arn: str
    region: str


def transformation_event(
    records: Sequence[SourceRecord], source: DeliveryStreamSource, invocation_id: str
) -> dict[str, Any]:
    """A fresh event per attempt, AWS's keys in AWS's order."""
    return {
        "invocationId": invocation_id,
        "sourceKinesisStreamArn": source.source_stream_arn,
        "deliveryStreamArn": source.delivery_stream_arn,
        "region": source.region,
        "records": [event_record(record) for record in records],
    }


# --- the function's answer ---------------------------------------------------------------------

Kind = Literal["ok", "dropped", "failed"]


@dataclass(frozen=True)
class RecordOutcome:
    record: SourceRecord
    kind: Kind
    data: bytes = b""  # the transformed data, for "ok"
    partition_keys: Mapping[str, str] = field(default_factory=dict)
    error: tuple[str, str] | None = None  # (errorCode, errorMessage), for "failed"


@dataclass(frozen=True)
class BatchFailure:
    """The whole invocation failed: every record of the batch is retried, then failed."""

    code: str
    message: str


def read_transformation_response(
    response: Any, records: Sequence[SourceRecord], *, partition_keys: Sequence[str] = ()
) -> list[RecordOutcome] | BatchFailure:
    """Read a function's response as Firehose does; ``partition_keys`` are those the Prefix uses.

    A response that breaks the status model (not a records list, an entry without recordId or
    result, a result not in Ok/Dropped/ProcessingFailed, Ok data that is not base64, an id
    repeated, missing or unknown) fails the whole batch. A record whose Ok lacks a partition key
    the prefix needs fails on its own.
    """
    entries = response.get("records") if isinstance(response, Mapping) else None
    if not isinstance(entries, list):
        return BatchFailure(*JSON_PROCESSING)
    by_id = {record.record_id: record for record in records}
    seen: dict[str, RecordOutcome] = {}
    for entry in entries:
        record_id = entry.get("recordId") if isinstance(entry, Mapping) else None
        if not isinstance(record_id, str):
            return BatchFailure(*JSON_PROCESSING)
        if record_id in seen:
            return BatchFailure(*DUPLICATED_RECORD_ID)
        record = by_id.get(record_id)
        if record is None:
            return BatchFailure(*JSON_PROCESSING)  # an id Firehose never sent
        outcome = _outcome(entry, record, partition_keys)
        if outcome is None:
            return BatchFailure(*JSON_PROCESSING)
        seen[record_id] = outcome
    if len(seen) != len(by_id):
        return BatchFailure(*MISSING_RECORD_ID)
    return [seen[record.record_id] for record in records]


def _outcome(
    entry: Mapping[str, Any], record: SourceRecord, needed: Sequence[str]
) -> RecordOutcome | None:
    result = entry.get("result")
    if result not in RESULTS:
        return None
    if result == "Dropped":
        return RecordOutcome(record, "dropped")
    if result == "ProcessingFailed":
        return RecordOutcome(record, "failed", error=PROCESSING_FAILED_STATUS)
    data = entry.get("data")
    if not isinstance(data, str):
        return None
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    metadata = entry.get("metadata")
    keys = metadata.get("partitionKeys") if isinstance(metadata, Mapping) else None
    keys = keys if isinstance(keys, Mapping) else {}
    missing = [name for name in needed if not isinstance(keys.get(name), str) or not keys[name]]
    if missing:
        message = f"Partition keys {missing} are missing from the Lambda response metadata."
        return RecordOutcome(record, "failed", error=(MISSING_PARTITION_KEY, message))
    return RecordOutcome(record, "ok", decoded, {str(k): str(v) for k, v in keys.items()})


def response_too_large(size: int) -> BatchFailure:
    # Lambda itself refuses to return more than its synchronous payload limit.
    return BatchFailure(
        FUNCTION_ERROR[0],
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({FIREHOSE_TRANSFORM_MAX_PAYLOAD_BYTES} bytes).",
    )


# --- the error output -------------------------------------------------------------------------


def error_envelope(
    record: SourceRecord,
    *,
    attempts_made: int,
    error: tuple[str, str],
    attempt_ending_ms: int,
    lambda_arn: str,
) -> dict[str, Any]:
    """One line of the error prefix, in Firehose's processing-failed format."""
    code, message = error
    return {
        "attemptsMade": attempts_made,
        "arrivalTimestamp": record.arrival_ms,
        "errorCode": code,
        "errorMessage": message,
        "attemptEndingTimestamp": attempt_ending_ms,
        "rawData": base64.b64encode(record.data).decode("ascii"),
        "lambdaArn": lambda_arn,
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
