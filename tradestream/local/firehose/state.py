"""State of the emulated delivery stream, and the rules that say when a buffer is due.

Two stages of buffering, as in Firehose: the processor buffer gathers source records until the
Lambda processor's BufferSizeInMBs or BufferIntervalInSeconds (then one invocation, capped at
Lambda's 6 MB request); the destination buffers, one per partition (the evaluated partition keys;
a single one without dynamic partitioning), gather transformed data until the S3 BufferingHints
size or interval (then one object). The buffers hold user records (``SourceRecord``: a KPL
aggregate's records one by one, a plain Kinesis record as itself). Where the stream is read per
shard is ``FirehoseShard``: the shared ``ShardCursor`` plus the Kinesis records read and not yet
done, whose done prefix is the checkpoint. A user record is done once the object holding it is in
S3 (data or error prefix), or it was Dropped; a Kinesis record is done once all its user records
are, wherever each went (an aggregate's records land in different partitions, objects and
invocations). Partitions fill at different rates, so the checkpoint waits for the slowest buffer
holding a record of the shard, and a crash re-sends at most what was written since (an aggregate
whole: a checkpoint never falls inside one).

No I/O and no threads here: the adapter (``delivery.py``) polls, invokes and writes, and calls in
here holding its lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from tradestream.local.firehose.events import EVENT_ENVELOPE_BYTES, SourceRecord
from tradestream.local.kinesis_consumer import ShardCursor
from tradestream.local.lambda_runtime import records_within_payload

PartitionKey = tuple[tuple[str, str], ...]  # ((name, value), ...) in the prefix's order
# (shard id, sequence number): the Kinesis record a buffered user record came from
RecordRef = tuple[str, str]


@dataclass
class FirehoseShard(ShardCursor):
    """One shard as the delivery stream reads it: the cursor, and its Kinesis records not yet
    done, each with the number of its user records still to be done."""

    unfinished: deque[str] = field(default_factory=deque)  # sequence numbers, in read order
    pending: dict[str, int] = field(default_factory=dict)  # every unfinished one: records left

    def read(self, records: Iterable[SourceRecord]) -> None:
        """Remember user records read, in order (an aggregate's come one after another)."""
        for record in records:
            sequence_number = record.sequence_number
            if sequence_number not in self.pending:
                self.unfinished.append(sequence_number)
                self.pending[sequence_number] = 0
            self.pending[sequence_number] += 1

    def finish(self, sequence_numbers: Iterable[str]) -> str | None:
        """Mark user records done, one sequence number each (an aggregate's repeat theirs); the
        new checkpoint when the done prefix of Kinesis records grew."""
        for sequence_number in sequence_numbers:
            if sequence_number in self.pending:  # else read by a cursor this one replaced
                self.pending[sequence_number] -= 1
        moved = None
        while self.unfinished and self.pending[self.unfinished[0]] <= 0:
            moved = self.unfinished.popleft()
            del self.pending[moved]
        if moved is not None:
            self.checkpoint = moved
        return moved


@dataclass
class ProcessorBuffer:
    records: deque[SourceRecord] = field(default_factory=deque)
    size: int = 0  # bytes of source data
    opened_at: float | None = None  # monotonic time the oldest buffered record came in

    def add(self, records: Iterable[SourceRecord], now: float) -> None:
        for record in records:
            if not self.records:
                self.opened_at = now
            self.records.append(record)
            self.size += len(record.data)

    def due(self, now: float, size_limit: int, interval_s: float, *, force: bool) -> bool:
        if not self.records:
            return False
        if force or self.size >= size_limit:
            return True
        if records_within_payload(self.records, EVENT_ENVELOPE_BYTES) < len(self.records):
            return True  # the 6 MB request is full before the buffer size is
        return self.wait_s(now, interval_s) <= 0

    def wait_s(self, now: float, interval_s: float) -> float:
        """Seconds until the interval makes the buffer due (0 when it already is)."""
        if self.opened_at is None:
            return interval_s
        return max(0.0, interval_s - (now - self.opened_at))

    def take(self, size_limit: int, now: float) -> list[SourceRecord]:
        """The next batch: up to ``size_limit`` bytes of data (at least one record), ≤ 6 MB."""
        count, total = 0, 0
        for record in self.records:
            if count and total + len(record.data) > size_limit:
                break
            count += 1
            total += len(record.data)
        count = min(
            count,
            records_within_payload([self.records[i] for i in range(count)], EVENT_ENVELOPE_BYTES),
        )
        batch = [self.records.popleft() for _ in range(count)]
        self.size -= sum(len(record.data) for record in batch)
        self.opened_at = now if self.records else None
        return batch


@dataclass
class ObjectBuffer:
    """The data of one future S3 object."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    records: int = 0
    oldest_arrival_ms: int | None = None  # the prefix's !{timestamp:...} is evaluated at this
    opened_at: float = 0.0
    sources: list[RecordRef] = field(default_factory=list)  # done once the object is written

    def add(self, data: bytes, arrival_ms: int, source: RecordRef) -> None:
        self.sources.append(source)
        self.chunks.append(data)
        self.size += len(data)
        self.records += 1
        if self.oldest_arrival_ms is None or arrival_ms < self.oldest_arrival_ms:
            self.oldest_arrival_ms = arrival_ms


@dataclass
class DestinationBuffers:
    buffers: dict[PartitionKey, ObjectBuffer] = field(default_factory=dict)

    def add(
        self, key: PartitionKey, data: bytes, arrival_ms: int, now: float, source: RecordRef
    ) -> None:
        buffer = self.buffers.get(key)
        if buffer is None:
            buffer = self.buffers[key] = ObjectBuffer(opened_at=now)
        buffer.add(data, arrival_ms, source)

    def take_due(
        self, now: float, size_limit: int, interval_s: float, *, force: bool
    ) -> list[tuple[PartitionKey, ObjectBuffer]]:
        due = [
            key
            for key, buffer in self.buffers.items()
            if force or buffer.size >= size_limit or now - buffer.opened_at >= interval_s
        ]
        return [(key, self.buffers.pop(key)) for key in due]

    def put_back(self, key: PartitionKey, buffer: ObjectBuffer) -> None:
        """Return an object that could not be written; newer data for the key joins it."""
        newer = self.buffers.pop(key, None)
        if newer is not None:
            buffer.chunks.extend(newer.chunks)
            buffer.sources.extend(newer.sources)
            buffer.size += newer.size
            buffer.records += newer.records
        self.buffers[key] = buffer

    def wait_s(self, now: float, interval_s: float) -> float | None:
        """Seconds until the next buffer is due by its interval; None when nothing is buffered."""
        if not self.buffers:
            return None
        opened = min(buffer.opened_at for buffer in self.buffers.values())
        return max(0.0, interval_s - (now - opened))

    @property
    def records(self) -> int:
        return sum(buffer.records for buffer in self.buffers.values())


@dataclass
class FirehoseStats:
    """The delivery stream's counters. ``records_in`` and ``bytes_in`` count Kinesis records (an
    aggregate once); every other record count is of user records (an aggregate's, one by one)."""

    records_in: int = 0  # Kinesis records read from the source stream
    bytes_in: int = 0  # their data, as stored in the stream
    user_records_in: int = 0  # the user records in them: records_in plus what aggregates add
    invocations: int = 0  # transform attempts, retries included
    records_invoked: int = 0  # records handed to the transform, retries included
    invocation_failures: int = 0  # attempts that failed as a whole (error, timeout, bad answer)
    ok: int = 0  # records the transform answered Ok
    dropped: int = 0
    processing_failed: int = 0  # records failed one by one (ProcessingFailed, no partition key)
    batch_failed_records: int = 0  # records of batches that failed every attempt
    records_delivered: int = 0  # records in data objects written to S3
    error_records: int = 0  # error envelopes written to S3
    objects_written: int = 0  # data objects
    error_objects_written: int = 0
    bytes_written: int = 0  # bytes of data objects, as stored (after compression)
    put_failures: int = 0  # PutObject attempts that failed (retried)

    def snapshot(self) -> FirehoseStats:
        return replace(self)
