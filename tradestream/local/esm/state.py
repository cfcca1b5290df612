"""State of the emulated Kinesis event source mapping, and the rules that move it.

Per shard: the iterator position, records fetched but not yet invoked (the batching buffer),
batches waiting to be invoked again (retries, bisected halves, the failed suffix of a partial
batch), the checkpoint, and whether the last poll found the shard at its tip. ``settle`` decides,
from an invocation's outcome and the mapping settings, what is done, what is invoked next and
what is discarded to the on-failure destination.

No I/O and no threads here: the adapter (``mapping.py``) polls, invokes and sends, and calls in here
holding its lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from tradestream.local.esm.events import EVENT_ENVELOPE_BYTES, Outcome, StreamRecord
from tradestream.local.esm.settings import MappingSettings
from tradestream.local.kinesis_consumer import ShardCursor
from tradestream.local.lambda_runtime import records_within_payload


@dataclass(frozen=True)
class Batch:
    """Records invoked together, with how often they have been tried."""

    records: tuple[StreamRecord, ...]
    retries: int = 0  # re-invocations after failures; bisecting does not count (AWS docs)
    invocations: int = 0  # invocations that included these records: approximateInvokeCount
    last_response: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def halves(self) -> tuple[Batch, Batch]:
        middle = len(self.records) // 2
        return (
            replace(self, records=self.records[:middle]),
            replace(self, records=self.records[middle:]),
        )

    def split_at(self, sequence_number: str) -> tuple[tuple[StreamRecord, ...], Batch]:
        """Records before ``sequence_number`` (done), and the batch from it on (to retry)."""
        index = next(
            i for i, record in enumerate(self.records) if record.sequence_number == sequence_number
        )
        return self.records[:index], replace(self, records=self.records[index:])


def split_expired(
    batch: Batch, now: float, maximum_record_age_s: int
) -> tuple[Batch | None, Batch | None]:
    """(records too old to invoke, the rest). Records arrive in order, so the old ones lead."""
    if maximum_record_age_s < 0:
        return None, batch
    expired = 0
    for record in batch.records:
        if now - record.arrival <= maximum_record_age_s:
            break
        expired += 1
    if expired == 0:
        return None, batch
    old = replace(batch, records=batch.records[:expired])
    rest = replace(batch, records=batch.records[expired:]) if expired < len(batch) else None
    return old, rest


@dataclass(frozen=True)
class Settlement:
    """What follows one invocation of a batch."""

    succeeded: tuple[StreamRecord, ...] = ()  # checkpoint past these
    next_batches: tuple[Batch, ...] = ()  # invoke these next, before anything newer
    discard: Batch | None = None  # send to the on-failure destination, then skip past
    retry_delay: bool = False  # the same records again: back off before re-invoking
    bisected: bool = False


def settle(batch: Batch, outcome: Outcome, settings: MappingSettings) -> Settlement:
    if outcome.kind == "success":
        return Settlement(succeeded=batch.records)
    if outcome.kind == "partial" and outcome.failed_sequence is not None:
        # Lambda checkpoints before the lowest failed record and retries from it. With bisect on,
        # AWS "bisects at the returned sequence number", which is the same split.
        done, remainder = batch.split_at(outcome.failed_sequence)
        return replace(_retry_or_discard(remainder, settings), succeeded=done)
    # An exception, a timeout or an invalid partial response: the whole batch failed.
    if settings.bisect_batch_on_function_error and len(batch) > 1:
        return Settlement(next_batches=batch.halves(), bisected=True)
    return _retry_or_discard(batch, settings)


def _retry_or_discard(batch: Batch, settings: MappingSettings) -> Settlement:
    limit = settings.maximum_retry_attempts
    if limit != -1 and batch.retries >= limit:
        return Settlement(discard=batch)
    return Settlement(next_batches=(replace(batch, retries=batch.retries + 1),), retry_delay=True)


@dataclass
class MappingShard(ShardCursor):
    """One shard as the mapping works it: the cursor, and the records between fetch and done."""

    buffer: deque[StreamRecord] = field(default_factory=deque)
    pending: deque[Batch] = field(default_factory=deque)
    window_opened: float | None = None  # monotonic time the oldest buffered record came in
    in_flight: Batch | None = None

    def add_fetched(self, records: list[StreamRecord], *, now: float) -> None:
        if records:
            if not self.buffer:
                self.window_opened = now
            self.buffer.extend(records)

    def wants_records(self, settings: MappingSettings) -> bool:
        return not self.closed and not self.pending and len(self.buffer) < settings.batch_size

    def take_batch(self, now: float, settings: MappingSettings) -> Batch | None:
        """The next batch to invoke: a retry first, else buffered records once a batch is due."""
        if self.pending:
            self.in_flight = self.pending.popleft()
            return self.in_flight
        if not self.buffer or not self._batch_due(now, settings):
            return None
        candidates = [self.buffer[i] for i in range(min(settings.batch_size, len(self.buffer)))]
        count = records_within_payload(candidates, EVENT_ENVELOPE_BYTES)
        for _ in range(count):
            self.buffer.popleft()
        self.window_opened = now if self.buffer else None
        self.in_flight = Batch(records=tuple(candidates[:count]))
        return self.in_flight

    def _batch_due(self, now: float, settings: MappingSettings) -> bool:
        if len(self.buffer) >= settings.batch_size or self.closed:
            return True
        if records_within_payload(self.buffer, EVENT_ENVELOPE_BYTES) < len(self.buffer):
            return True  # the 6 MB payload is full before BatchSize is
        return self.window_remaining(now, settings) <= 0

    def window_remaining(self, now: float, settings: MappingSettings) -> float:
        if self.window_opened is None:
            return settings.maximum_batching_window_s
        return settings.maximum_batching_window_s - (now - self.window_opened)

    def finish(self, settlement: Settlement) -> str | None:
        """Apply a settlement once its side effects (on-failure delivery) are durable; the new
        checkpoint (last sequence number succeeded or discarded) when it moved."""
        done = list(settlement.succeeded)
        if settlement.discard is not None:
            done.extend(settlement.discard.records)
        if done:
            self.checkpoint = done[-1].sequence_number
        self.pending.extendleft(reversed(settlement.next_batches))
        self.in_flight = None
        return done[-1].sequence_number if done else None

    def requeue_in_flight(self) -> None:
        """Put back a batch whose handling broke off, so it is tried again, not lost."""
        if self.in_flight is not None:
            self.pending.appendleft(self.in_flight)
            self.in_flight = None

    def idle_since(self, since: float) -> bool:
        """Nothing buffered, retried or in flight, and a poll started at or after ``since``
        found the shard at its tip (no records, MillisBehindLatest 0) or the shard is closed."""
        if self.buffer or self.pending or self.in_flight is not None:
            return False
        return super().idle_since(since)


@dataclass
class MappingStats:
    invocations: int = 0
    records_delivered: int = 0  # records handed to the function, redeliveries included
    user_records_delivered: int = 0  # the same in user records (each trade of an aggregate)
    records_succeeded: int = 0  # records checkpointed after a successful invocation
    batch_item_failures: int = 0  # itemIdentifiers the function reported
    function_errors: int = 0  # exceptions and timeouts
    invalid_responses: int = 0  # malformed partial batch responses (whole batch failed)
    bisections: int = 0
    on_failure_sent: int = 0  # on-failure records delivered to the destination
    records_discarded: int = 0  # records skipped past (retries exhausted or too old)

    def snapshot(self) -> MappingStats:
        return replace(self)
