"""The Firehose data-transformation exchange (AWS, "Transform source data in Amazon Data Firehose"),
over Powertools' data classes: ``KinesisFirehoseEvent`` and ``KinesisFirehoseRecord`` for the event,
``KinesisFirehoseDataTransformationRecord`` for each answer.

Response: every input ``recordId`` exactly once, with ``result`` Ok / Dropped / ProcessingFailed,
base64 ``data`` and, for dynamic partitioning, ``metadata.partitionKeys``.

Powertools' classes are views that trust the event; what they leave out is done here:

- Only ``records`` is required. The other top-level fields are informational, absent from some
  sources (``sourceKinesisStreamArn``) and from hand-written test events, and never needed to
  answer; Powertools' properties raise KeyError for an absent one, so read them with ``.get``.
- A record with a recordId is answered even when its data is missing or broken; one without
  cannot be answered at all and is only counted.
- ``payload`` decodes strictly: Powertools' ``data_as_bytes`` skips characters outside the base64
  alphabet, so corrupt data would become other bytes instead of failing as what it is.
- ``response`` builds the envelope itself: ``KinesisFirehoseDataTransformationResponse`` raises on
  an empty list, and a batch without one answerable record must still be answered, not raise.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import (
    KinesisFirehoseDataTransformationRecord,
    KinesisFirehoseDataTransformationRecordMetadata,
    KinesisFirehoseEvent,
    KinesisFirehoseRecord,
)

Answer = KinesisFirehoseDataTransformationRecord
TransformationResponse = dict[str, list[dict[str, Any]]]


class InvalidEventError(ValueError):
    """An event that is not a Firehose transformation event at all (no ``records`` list)."""

    code = "InvalidFirehoseEvent"


@dataclass(frozen=True)
class TransformationBatch:
    """One invocation's event and the records in it that can be answered."""

    event: KinesisFirehoseEvent
    records: tuple[KinesisFirehoseRecord, ...]
    # Records without a usable recordId: they cannot be answered (Firehose will fail the batch
    # with Lambda.MissingRecordId and retry it), so they are only counted and logged.
    unanswerable: int = 0


def read_batch(event: Any) -> TransformationBatch:
    if not isinstance(event, dict) or not isinstance(event.get("records"), list):
        raise InvalidEventError("not a Firehose transformation event: it needs a 'records' list")
    answerable = [_answerable(raw) for raw in event["records"]]
    records = tuple(record for record in answerable if record is not None)
    return TransformationBatch(
        KinesisFirehoseEvent(event), records, unanswerable=len(answerable) - len(records)
    )


def _answerable(raw: Any) -> KinesisFirehoseRecord | None:
    if not isinstance(raw, dict):
        return None
    record_id = raw.get("recordId")
    if not isinstance(record_id, str) or not record_id:
        return None
    if not isinstance(raw.get("data"), str):
        # Answered ProcessingFailed all the same, with the (empty) data that was sent.
        raw = {**raw, "data": ""}
    return KinesisFirehoseRecord(raw)


def payload(record: KinesisFirehoseRecord) -> bytes:
    """The record's bytes; ValueError when ``data`` is not base64."""
    try:
        return base64.b64decode(record.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"data is not base64: {exc}") from exc


# --- the answers ----------------------------------------------------------------------------


def ok(record: KinesisFirehoseRecord, data: bytes, partition_keys: Mapping[str, str]) -> Answer:
    return record.build_data_transformation_response(
        result="Ok",
        data=base64.b64encode(data).decode("ascii"),
        metadata=KinesisFirehoseDataTransformationRecordMetadata(dict(partition_keys)),
    )


def dropped(record: KinesisFirehoseRecord) -> Answer:
    return record.build_data_transformation_response(result="Dropped", data=record.data)


def processing_failed(record: KinesisFirehoseRecord) -> Answer:
    # The original data goes back unchanged; Firehose writes it to the error prefix as rawData.
    return record.build_data_transformation_response(result="ProcessingFailed", data=record.data)


def response(answers: Iterable[Answer]) -> TransformationResponse:
    return {"records": [answer.asdict() for answer in answers]}
