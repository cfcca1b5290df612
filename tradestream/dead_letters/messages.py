"""The two kinds of message the hotstore DLQ holds, decoded from their documented shapes, and the
filters that select among them. Pure functions; no I/O here.

- ``hotstore``: a poison record the hotstore function sent itself, with its data (base64) and
  everything that locates it in the stream. Its body (``lambdas/hotstore/dlq.py`` documents it;
  this core module does not import the deployable)::

      {"source": "tradestream.hotstore", "schema": 1, "reason": "InvalidJson", "error": "...",
       "eventSourceARN": "arn:aws:kinesis:...:stream/trades", "shardId": "shardId-...",
       "sequenceNumber": "...", "partitionKey": "AAPL", "approximateArrivalTimestamp": 1718900000.1,
       "data": "<base64>", "failedAt": <epoch ms>, "functionName": "...", "requestId": "..."}

  Records over the SQS message size have ``"data": null`` with ``dataOmitted``, ``dataSha256``
  and ``dataLength``: the record is then read back from the stream by its sequence number.
  A poison user record of a KPL aggregate has its message alone, with ``"subSequenceNumber"``
  (its position in the aggregate, whose sequence number ``sequenceNumber`` is) and its own data
  and partition key: it is redriven as a plain record, and read back by opening the aggregate.
- ``on-failure``: what the event source mapping sends its OnFailure destination once it gives up
  on a batch (``RetryAttemptsExhausted``, ``RecordAgeExceeded``): AWS's invocation record, batch
  metadata only (``requestContext``, ``responseContext``, ``version``, ``timestamp``,
  ``KinesisBatchInfo`` with the shard and the sequence range). The records stay in the stream;
  ``batchSize`` counts Kinesis records, so an aggregate is one, read back and redriven as it is
  (still an aggregate: the consumers open it).

Anything else is ``unknown``: listed as it is, never redriven.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["hotstore", "on-failure", "unknown"]
KINDS: tuple[Kind, ...] = ("hotstore", "on-failure", "unknown")
HOTSTORE_SOURCE = "tradestream.hotstore"
HOTSTORE_SCHEMA = 1
UNRECOGNISED = "Unrecognised"

PayloadEncoding = Literal["text", "base64"]


@dataclass(frozen=True)
class DlqMessage:
    """One DLQ message as the tooling reads it; ``None`` where the kind has no such field."""

    message_id: str
    kind: Kind
    reason: str  # the hotstore's code (InvalidJson...) or the mapping's condition
    error: str | None = None  # what the hotstore said, or how the mapping's last try ended
    stream_arn: str | None = None
    shard_id: str | None = None
    sequence_number: str | None = None  # hotstore: the record's own (an aggregate's, for ...
    sub_sequence_number: int | None = None  # ... a user record of it: its position in it)
    start_sequence_number: str | None = None  # on-failure: the batch's first record ...
    end_sequence_number: str | None = None  # ... and its last
    batch_size: int = 1
    partition_key: str | None = None
    data: bytes | None = None  # the record's bytes, when the message carries them
    data_omitted: bool = False  # too large for SQS: read back from the stream
    data_sha256: str | None = None
    data_length: int | None = None
    undecodable: str | None = None  # why the record's bytes cannot be known from the message
    failed_at: str | None = None  # ISO 8601, when the hotstore or the mapping gave up
    sent_at: str | None = None  # SQS SentTimestamp, ISO 8601
    receive_count: int | None = None  # SQS ApproximateReceiveCount (listing counts too)
    body: str = ""

    @property
    def stream_name(self) -> str | None:
        if not self.stream_arn:
            return None
        _, _, resource = self.stream_arn.rpartition(":")
        kind, _, name = resource.partition("/")
        return name if kind == "stream" and name else None

    @property
    def position(self) -> str:
        """Where its records are in the shard: ``<sequence number>``, ``<sequence number>:<sub>``
        for a user record of an aggregate, ``<first>..<last>`` for a batch."""
        if self.kind == "on-failure":
            return f"{self.start_sequence_number}..{self.end_sequence_number}"
        if self.sequence_number and self.sub_sequence_number is not None:
            return f"{self.sequence_number}:{self.sub_sequence_number}"
        return self.sequence_number or ""

    @property
    def first_sequence_number(self) -> str | None:
        return self.sequence_number or self.start_sequence_number

    @property
    def last_sequence_number(self) -> str | None:
        return self.sequence_number or self.end_sequence_number

    def payload(self) -> tuple[str | None, PayloadEncoding | None]:
        """What to show of the record: text when it is printable UTF-8, base64 otherwise; for a
        message that is neither kind, its body."""
        if self.kind == "unknown":
            return payload_text(self.body.encode())
        if self.data is None:
            return None, None
        return payload_text(self.data)

    def to_json(self) -> dict[str, Any]:
        payload, encoding = self.payload()
        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "reason": self.reason,
            "error": self.error,
            "stream": self.stream_name,
            "stream_arn": self.stream_arn,
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
            "sub_sequence_number": self.sub_sequence_number,
            "start_sequence_number": self.start_sequence_number,
            "end_sequence_number": self.end_sequence_number,
            "batch_size": self.batch_size,
            "partition_key": self.partition_key,
            "payload": payload,
            "payload_encoding": encoding,
            "payload_bytes": len(self.data) if self.data is not None else self.data_length,
            "data_omitted": self.data_omitted,
            "data_sha256": self.data_sha256,
            "undecodable": self.undecodable,
            "failed_at": self.failed_at,
            "sent_at": self.sent_at,
            "receive_count": self.receive_count,
        }


def payload_text(data: bytes) -> tuple[str, PayloadEncoding]:
    """``data`` as text when it is printable UTF-8 (tabs and newlines allowed), else base64."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"
    if all(char.isprintable() or char in "\t\r\n" for char in text):
        return text, "text"
    return base64.b64encode(data).decode("ascii"), "base64"


def decode(message: Mapping[str, Any]) -> DlqMessage:
    """A ReceiveMessage entry (``MessageId``, ``Body``, ``Attributes``) decoded."""
    body = str(message.get("Body", ""))
    common = _sqs_fields(message, body)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if parsed.get("source") == HOTSTORE_SOURCE and parsed.get("schema") == HOTSTORE_SCHEMA:
            return _hotstore(parsed, common)
        if isinstance(parsed.get("KinesisBatchInfo"), dict) and "requestContext" in parsed:
            return _on_failure(parsed, common)
    return DlqMessage(kind="unknown", reason=UNRECOGNISED, **common)


def _sqs_fields(message: Mapping[str, Any], body: str) -> dict[str, Any]:
    attributes = message.get("Attributes") or {}
    sent = attributes.get("SentTimestamp")
    count = attributes.get("ApproximateReceiveCount")
    return {
        "message_id": str(message["MessageId"]),
        "sent_at": iso_from_epoch_ms(int(sent)) if sent else None,
        "receive_count": int(count) if count else None,
        "body": body,
    }


def _hotstore(body: Mapping[str, Any], common: dict[str, Any]) -> DlqMessage:
    encoded = body.get("data")
    data: bytes | None = None
    undecodable = None
    if isinstance(encoded, str):
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            # Kinesis always delivers base64; this came from an event made by hand.
            undecodable = "the message's data is not base64: the record's bytes are not known"
    failed_at = body.get("failedAt")
    return DlqMessage(
        kind="hotstore",
        reason=str(body.get("reason") or UNRECOGNISED),
        error=_text(body.get("error")),
        stream_arn=_text(body.get("eventSourceARN")),
        shard_id=_text(body.get("shardId")),
        sequence_number=_text(body.get("sequenceNumber")),
        sub_sequence_number=_int(body.get("subSequenceNumber")),
        partition_key=_text(body.get("partitionKey")),
        data=data,
        data_omitted=bool(body.get("dataOmitted")),
        data_sha256=_text(body.get("dataSha256")),
        data_length=_int(body.get("dataLength")),
        undecodable=undecodable,
        failed_at=iso_from_epoch_ms(failed_at) if isinstance(failed_at, int) else None,
        **common,
    )


def _on_failure(body: Mapping[str, Any], common: dict[str, Any]) -> DlqMessage:
    info = body["KinesisBatchInfo"]
    request = body.get("requestContext") or {}
    return DlqMessage(
        kind="on-failure",
        reason=str(request.get("condition") or UNRECOGNISED),
        error=_last_try(request, body.get("responseContext")),
        stream_arn=_text(info.get("streamArn")),
        shard_id=_text(info.get("shardId")),
        start_sequence_number=_text(info.get("startSequenceNumber")),
        end_sequence_number=_text(info.get("endSequenceNumber")),
        batch_size=_int(info.get("batchSize")) or 0,
        failed_at=_text(body.get("timestamp")),
        **common,
    )


def _last_try(request: Mapping[str, Any], response: Any) -> str:
    invocations = _int(request.get("approximateInvokeCount")) or 0
    if not isinstance(response, Mapping):
        # Lambda leaves responseContext out for batches discarded before any invocation.
        return f"discarded after {invocations} invocations"
    error = response.get("functionError")
    status = response.get("statusCode")
    ended = f"function error {error}" if error else f"status {status}"
    return f"{ended} after {invocations} invocations"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def iso_from_epoch_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- selecting messages ----------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which messages a command acts on. Each filter given must match (AND); several values of
    one filter are alternatives (OR); no filter at all selects every message.

    Filters read only what a message itself says, so ``list`` and ``redrive`` select alike: an
    on-failure message names no partition key, so ``symbols`` never selects one.
    """

    kinds: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    shards: frozenset[str] = frozenset()
    symbols: frozenset[str] = frozenset()  # the partition key, which is the trade's symbol
    message_ids: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        kinds: Iterable[str] = (),
        reasons: Iterable[str] = (),
        shards: Iterable[str] = (),
        symbols: Iterable[str] = (),
        message_ids: Iterable[str] = (),
    ) -> Selection:
        return cls(
            frozenset(kinds),
            frozenset(reasons),
            frozenset(shards),
            frozenset(symbols),
            frozenset(message_ids),
        )

    def matches(self, message: DlqMessage) -> bool:
        wanted: tuple[tuple[frozenset[str], str | None], ...] = (
            (self.kinds, message.kind),
            (self.reasons, message.reason),
            (self.shards, message.shard_id),
            (self.symbols, message.partition_key),
            (self.message_ids, message.message_id),
        )
        return all(not values or value in values for values, value in wanted)
