"""The Firehose data-transformation exchange: the event Firehose invokes the function with, and
the response it expects (AWS, "Transform source data in Amazon Data Firehose").

Event: ``{"invocationId", "deliveryStreamArn", "sourceKinesisStreamArn"?, "region", "records":
[{"recordId", "approximateArrivalTimestamp", "data" (base64), "kinesisRecordMetadata"?}]}``.
Only ``records`` is required here: the other top-level fields are informational, absent from some
sources (``sourceKinesisStreamArn``) and from hand-written test events, and never needed to answer.

Response: every input ``recordId`` exactly once, with ``result`` Ok / Dropped / ProcessingFailed,
base64 ``data`` and, for dynamic partitioning, ``metadata.partitionKeys``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Result = Literal["Ok", "Dropped", "ProcessingFailed"]


class InvalidEventError(ValueError):
    """An event that is not a Firehose transformation event at all (no ``records`` list)."""

    code = "InvalidFirehoseEvent"


class KinesisRecordMetadata(BaseModel):
    """Where a record came from when the delivery stream reads a Kinesis data stream."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    shardId: str
    partitionKey: str
    approximateArrivalTimestamp: int
    sequenceNumber: str
    # AWS samples show both 0 and "" here; neither matters to the enrichment.
    subsequenceNumber: int | str | None = None


class _EventRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    recordId: str = Field(min_length=1)
    approximateArrivalTimestamp: int | None = None
    data: str | None = None
    kinesisRecordMetadata: KinesisRecordMetadata | None = None


class _EventEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    invocationId: str | None = None
    deliveryStreamArn: str | None = None
    sourceKinesisStreamArn: str | None = None
    region: str | None = None
    records: list[Any]


@dataclass(frozen=True)
class FirehoseRecord:
    record_id: str
    data: str  # base64 exactly as received: ProcessingFailed answers send it back unchanged
    approximate_arrival_ms: int | None = None
    metadata: KinesisRecordMetadata | None = None

    def payload(self) -> bytes:
        """The record's bytes; ValueError when ``data`` is not base64."""
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"data is not base64: {exc}") from exc


@dataclass(frozen=True)
class FirehoseEvent:
    records: tuple[FirehoseRecord, ...]
    # Records without a usable recordId: they cannot be answered (Firehose will fail the batch
    # with Lambda.MissingRecordId and retry it), so they are only counted and logged.
    unanswerable: int = 0
    invocation_id: str | None = None
    delivery_stream_arn: str | None = None
    source_kinesis_stream_arn: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> FirehoseEvent:
        try:
            envelope = _EventEnvelope.model_validate(event)
        except ValidationError as exc:
            raise InvalidEventError(
                "not a Firehose transformation event: it needs a 'records' list"
            ) from exc
        records: list[FirehoseRecord] = []
        unanswerable = 0
        for raw in envelope.records:
            record = _parse_record(raw)
            if record is None:
                unanswerable += 1
            else:
                records.append(record)
        return cls(
            records=tuple(records),
            unanswerable=unanswerable,
            invocation_id=envelope.invocationId,
            delivery_stream_arn=envelope.deliveryStreamArn,
            source_kinesis_stream_arn=envelope.sourceKinesisStreamArn,
            region=envelope.region,
        )


def _parse_record(raw: Any) -> FirehoseRecord | None:
    """A record, even one whose data or metadata is broken, as long as it has a recordId."""
    if not isinstance(raw, Mapping):
        return None
    try:
        record = _EventRecord.model_validate(raw)
    except ValidationError:
        record_id = raw.get("recordId")
        if not isinstance(record_id, str) or not record_id:
            return None
        data = raw.get("data")
        # Malformed around the data: still answered (ProcessingFailed), with what was sent.
        return FirehoseRecord(record_id=record_id, data=data if isinstance(data, str) else "")
    return FirehoseRecord(
        record_id=record.recordId,
        data=record.data if record.data is not None else "",
        approximate_arrival_ms=record.approximateArrivalTimestamp,
        metadata=record.kinesisRecordMetadata,
    )


# --- the response ---------------------------------------------------------------------------


class PartitionMetadata(TypedDict):
    partitionKeys: dict[str, str]


class ResponseRecord(TypedDict):
    recordId: str
    result: Result
    data: str
    metadata: NotRequired[PartitionMetadata]


class FirehoseResponse(TypedDict):
    records: list[ResponseRecord]


def ok(record_id: str, payload: bytes, partition_keys: Mapping[str, str]) -> ResponseRecord:
    return {
        "recordId": record_id,
        "result": "Ok",
        "data": base64.b64encode(payload).decode("ascii"),
        "metadata": {"partitionKeys": dict(partition_keys)},
    }


def dropped(record: FirehoseRecord) -> ResponseRecord:
    return {"recordId": record.record_id, "result": "Dropped", "data": record.data}


def processing_failed(record: FirehoseRecord) -> ResponseRecord:
    # The original data goes back unchanged; Firehose writes it to the error prefix as rawData.
    return {"recordId": record.record_id, "result": "ProcessingFailed", "data": record.data}
