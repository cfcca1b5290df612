"""Poison records to the SQS dead-letter queue, with their data, in SendMessageBatch calls.

Choice: a poison record (not base64, not JSON, not a valid trade, or a trade DynamoDB cannot store)
can never succeed, so retrying it would only block its shard: with ReportBatchItemFailures Lambda
redelivers from the lowest failed sequence number until MaximumRetryAttempts or
MaximumRecordAgeInSeconds, and then its OnFailure destination receives batch metadata only, never
the record. The handler therefore sends each poison record itself to the DLQ, with its data
(base64, as received), the reason and everything that locates it in the stream, and reports it as
a success so the shard moves on. Transient failures (throttling, 5xx, UnprocessedItems past the
retry budget) are reported as batchItemFailures, and Lambda retries them. If the DLQ send itself
fails, the poison record is reported as a batchItemFailure too: it is retried, never silently
dropped. The queue also receives the mapping's on-failure records; ``"source"`` in the body tells
ours apart.

Message body (JSON, ASCII-only)::

    {"source": "tradestream.hotstore", "schema": 1,
     "reason": "InvalidJson", "error": "record: Invalid JSON: ...",
     "eventSourceARN": "arn:aws:kinesis:...:stream/trades", "shardId": "shardId-000000000000",
     "sequenceNumber": "4959...", "partitionKey": "AAPL",
     "approximateArrivalTimestamp": 1718900000.123, "data": "<base64 as received>",
     "failedAt": <epoch ms>, "functionName": "...", "requestId": "..."}

One message per poison *user* record: a poison trade inside a KPL aggregate goes alone (the rest of
the aggregate is written), and its message adds ``"subSequenceNumber"`` (its position in the
aggregate, after ``sequenceNumber``, which is the aggregate's) and, when it was put with one,
``"explicitHashKey"``; its ``data`` and ``partitionKey`` are then the user record's own, not the
aggregate's. A Kinesis record that is poison as a whole (not base64, a corrupt aggregate) has no
``subSequenceNumber`` and its ``data`` as received. A record is replayed by decoding ``data`` and
putting it back on the stream with its ``partitionKey``, as a plain record.

Kinesis records reach 1 MiB (base64: 1.33 MiB), more than an SQS message holds: then ``data`` is
null and ``dataOmitted``, ``dataSha256`` (of the poison bytes: the user record's for one of an
aggregate) and ``dataLength`` say so; the locator (with the sub-sequence number) still finds the
record in the stream while it is retained. The 256 KiB SQS
limit is used although AWS now allows 1 MiB: queues created earlier, and LocalStack, still have it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdas.hotstore.records import RecordRef
from lambdas.hotstore.rounds import CallOutcome, RetryRounds
from tradestream.kpl import UserRecord

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 256 * 1024  # per message and per SendMessageBatch call (sum of bodies)
SOURCE = "tradestream.hotstore"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DeadLetter:
    ref: RecordRef  # the Kinesis record
    reason: str  # a code from lambdas.hotstore.records
    error: str
    user: UserRecord | None = None  # the poison user record; None when the whole record is

    @property
    def data(self) -> str:
        """The poison bytes, base64: the user record's, or the Kinesis record's as received."""
        if self.user is None or not self.user.aggregated:
            return self.ref.data
        return base64.b64encode(self.user.data).decode("ascii")

    @property
    def partition_key(self) -> str:
        return self.user.partition_key if self.user is not None else self.ref.partition_key

    @property
    def position(self) -> dict[str, Any]:
        """Where inside its Kinesis record the poison sits, for a user record of an aggregate."""
        if self.user is None or not self.user.aggregated:
            return {}
        position: dict[str, Any] = {"subSequenceNumber": self.user.sub_sequence_number}
        if self.user.explicit_hash_key is not None:
            position["explicitHashKey"] = self.user.explicit_hash_key
        return position


@dataclass
class DeadLetterResult:
    sent: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)  # letter, last error code
    calls: int = 0


def message_body(
    letter: DeadLetter, *, failed_at_ms: int, extra: Mapping[str, Any] | None = None
) -> str:
    ref = letter.ref
    body: dict[str, Any] = {
        "source": SOURCE,
        "schema": SCHEMA_VERSION,
        "reason": letter.reason,
        "error": letter.error,
        "eventSourceARN": ref.event_source_arn,
        "shardId": ref.shard_id,
        "sequenceNumber": ref.sequence_number,
        **letter.position,
        "partitionKey": letter.partition_key,
        "approximateArrivalTimestamp": ref.approximate_arrival_timestamp,
        "data": letter.data,
        "failedAt": failed_at_ms,
        **(extra or {}),
    }
    # ensure_ascii: SQS refuses some code points (e.g. U+FFFE) that an error message might quote.
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    if len(text) <= MAX_BATCH_BYTES:
        return text
    raw = _raw_bytes(letter.data)
    body.update(
        data=None,
        dataOmitted=True,
        dataSha256=hashlib.sha256(raw).hexdigest(),
        dataLength=len(raw),
        # An error message can only be long because it quotes the data; keep its start.
        error=letter.error[:1000],
    )
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True)


def _raw_bytes(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return data.encode()


def packed(
    entries: Sequence[tuple[str, str]],
    max_entries: int = MAX_BATCH_ENTRIES,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[tuple[str, str]]]:
    """Group (id, body) entries into calls of at most ``max_entries`` entries and ``max_bytes``."""
    batch: list[tuple[str, str]] = []
    size = 0
    for entry in entries:
        body_bytes = len(entry[1].encode())
        if batch and (len(batch) == max_entries or size + body_bytes > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += body_bytes
    if batch:
        yield batch


class DeadLetterQueue:
    def __init__(
        self,
        client: Any,
        queue_url: str,
        rounds: RetryRounds,
        *,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self._rounds = rounds
        self._clock_ms = clock_ms

    def send(
        self,
        letters: Sequence[DeadLetter],
        *,
        extra: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> DeadLetterResult:
        """Send every letter; per-entry and whole-call failures are retried within the budget."""
        now = self._clock_ms()
        # Entry ids are positions: unique within a call, as SendMessageBatch requires.
        bodies = {
            str(i): message_body(letter, failed_at_ms=now, extra=extra)
            for i, letter in enumerate(letters)
        }
        done = self._rounds.run(bodies, packed, self._call, deadline=deadline)
        return DeadLetterResult(
            sent=[letter for i, letter in enumerate(letters) if str(i) not in done.failed],
            failed=[(letters[int(i)], code) for i, code in sorted(done.failed.items(), key=_pos)],
            calls=done.calls,
        )

    def _call(self, batch: dict[str, str]) -> CallOutcome[str]:
        entries = [{"Id": entry_id, "MessageBody": body} for entry_id, body in batch.items()]
        response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        outcome = CallOutcome[str]()
        for entry in response.get("Failed", []):
            code = str(entry.get("Code") or "Unknown")
            # SenderFault: the entry itself is wrong and would fail again; otherwise SQS erred.
            (outcome.failed if entry.get("SenderFault") else outcome.retry)[entry["Id"]] = code
        return outcome


def _pos(item: tuple[str, str]) -> int:
    return int(item[0])
