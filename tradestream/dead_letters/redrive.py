"""Redrive: put the records behind DLQ messages back on the stream, and delete a message only once
every one of its records is in the stream again.

Messages are taken in rounds (up to 100 messages, 500 records or 5 MiB of them): their records
are put, then the messages whose records all went in are deleted (DeleteMessageBatch), before the
next round is read. A message is kept (left in the queue, visible again when the redrive ends)
when its records are no longer in the stream, cannot be read back, come from another stream than
``STREAM_NAME``, or could not all be put. A record put for a message that is kept is put again by
the next redrive: the sinks are idempotent by the trade id, so a second copy changes nothing.

A whole PutRecords call refused for good (or past the retry budget) stops the redrive: what was
put is accounted for, its messages deleted, nothing more is read or sent.

With ``dry_run`` the records are still read back from the stream (so what is no longer retained
is known), and nothing is put or deleted: the counts say what a redrive would do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradestream.dead_letters.messages import DlqMessage, Selection
from tradestream.dead_letters.queue import HeldMessages
from tradestream.dead_letters.stream import (
    NotRetainedError,
    ReadFailedError,
    RedriveRecord,
    put_records,
    records_of,
)
from tradestream.kinesis import BatchLimits
from tradestream.limits import KINESIS_PUT_RECORDS_MAX_BYTES, KINESIS_PUT_RECORDS_MAX_RECORDS
from tradestream.retry import RetryBudget

Progress = Callable[[str], None]

ROUND_MAX_MESSAGES = 100
ROUND_MAX_RECORDS = KINESIS_PUT_RECORDS_MAX_RECORDS
ROUND_MAX_BYTES = KINESIS_PUT_RECORDS_MAX_BYTES

# Why a selected message was kept.
NOT_RETAINED = NotRetainedError.code
READ_FAILED = ReadFailedError.code
OTHER_STREAM = "OtherStream"
PUT_FAILED = "PutFailed"
DELETE_FAILED = "DeleteFailed"


@dataclass(frozen=True)
class KeptMessage:
    message_id: str
    why: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"message_id": self.message_id, "why": self.why, "detail": self.detail}


@dataclass
class RedriveSummary:
    """What a redrive did (with ``dry_run``: would do). ``messages`` = ``selected`` +
    ``skipped`` + ``unreadable``; ``selected`` = ``deleted`` + ``kept``."""

    dry_run: bool
    messages: int = 0  # read from the queue
    selected: int = 0  # matched the filters, of a kind that can be redriven
    skipped: int = 0  # left out by the filters
    unreadable: int = 0  # of neither kind: never redriven
    records: int = 0  # records the selected messages stand for, found
    records_put: int = 0
    put_calls: int = 0
    deleted: int = 0
    kept: list[KeptMessage] = field(default_factory=list)
    stopped: str | None = None  # why the redrive stopped early, if it did

    @property
    def complete(self) -> bool:
        """Every selected message redriven (exit status 0)."""
        return not self.kept and self.stopped is None

    def keep(self, message: DlqMessage, why: str, detail: str) -> None:
        self.kept.append(KeptMessage(message.message_id, why, detail))

    def to_json(self) -> dict[str, Any]:
        counts = {why: 0 for why in (NOT_RETAINED, READ_FAILED, OTHER_STREAM, PUT_FAILED)}
        for kept in self.kept:
            counts[kept.why] = counts.get(kept.why, 0) + 1
        return {
            "dry_run": self.dry_run,
            "messages": self.messages,
            "selected": self.selected,
            "skipped": self.skipped,
            "unreadable": self.unreadable,
            "records": self.records,
            "records_put": self.records_put,
            "put_calls": self.put_calls,
            "deleted": self.deleted,
            "kept": len(self.kept),
            "not_retained": counts[NOT_RETAINED],
            "failed": len(self.kept) - counts[NOT_RETAINED] - counts[OTHER_STREAM],
            "stopped": self.stopped,
            "kept_messages": [kept.to_json() for kept in self.kept],
        }


@dataclass
class _Round:
    messages: list[DlqMessage] = field(default_factory=list)
    records: list[RedriveRecord] = field(default_factory=list)
    size: int = 0

    def add(self, message: DlqMessage, records: list[RedriveRecord]) -> None:
        self.messages.append(message)
        self.records.extend(records)
        self.size += sum(record.size for record in records)

    def full(self) -> bool:
        return (
            len(self.messages) >= ROUND_MAX_MESSAGES
            or len(self.records) >= ROUND_MAX_RECORDS
            or self.size >= ROUND_MAX_BYTES
        )


@dataclass(frozen=True)
class Redrive:
    """One redrive's collaborators: the held queue, Kinesis for reading back (SDK retries) and
    for putting (no SDK retries: ``budget`` counts every attempt), and where progress goes."""

    held: HeldMessages
    kinesis_reads: Any
    kinesis_puts: Any
    stream_name: str
    budget: RetryBudget
    sleep: Callable[[float], None]
    progress: Progress = lambda line: None
    limits: BatchLimits | None = None

    def run(self, selection: Selection, *, dry_run: bool = False) -> RedriveSummary:
        summary = RedriveSummary(dry_run=dry_run)
        pending = _Round()
        try:
            for page in self.held.pages():
                for message in page:
                    self._take(message, selection, summary, pending)
                    if pending.full():
                        self._flush(pending, summary)
                        pending = _Round()
                    if summary.stopped is not None:
                        return summary
            self._flush(pending, summary)
            return summary
        finally:
            # Everything not deleted goes back to the queue at once, whatever happened.
            self.held.release()

    def _take(
        self, message: DlqMessage, selection: Selection, summary: RedriveSummary, pending: _Round
    ) -> None:
        summary.messages += 1
        if not selection.matches(message):
            summary.skipped += 1
            return
        if message.kind == "unknown":
            summary.unreadable += 1
            return
        summary.selected += 1
        if message.stream_name != self.stream_name:
            detail = f"from stream {message.stream_name}, not {self.stream_name} (STREAM_NAME)"
            summary.keep(message, OTHER_STREAM, detail)
            return
        try:
            records = records_of(message, self.kinesis_reads, self.stream_name)
        except (NotRetainedError, ReadFailedError) as exc:
            summary.keep(message, exc.code, str(exc))
            self.progress(f"keeping {message.message_id}: {exc}")
            return
        if message.kind == "on-failure" and len(records) != message.batch_size:
            self.progress(
                f"{message.message_id}: read {len(records)} records back, "
                f"the batch had {message.batch_size}"
            )
        summary.records += len(records)
        pending.add(message, records)

    def _flush(self, pending: _Round, summary: RedriveSummary) -> None:
        if not pending.messages:
            return
        if summary.dry_run:
            summary.records_put += len(pending.records)
            summary.deleted += len(pending.messages)
            self.progress(
                f"would put {len(pending.records)} records and delete "
                f"{len(pending.messages)} messages"
            )
            return
        outcome = put_records(
            self.kinesis_puts,
            self.stream_name,
            pending.records,
            self.budget,
            limits=self.limits,
            sleep=self.sleep,
        )
        summary.records_put += len(outcome.put)
        summary.put_calls += outcome.calls
        failed: dict[str, str] = {}
        for record, code in outcome.failed:
            failed.setdefault(record.message_id, code)
        done = [m.message_id for m in pending.messages if m.message_id not in failed]
        refused = self.held.delete(done)
        summary.deleted += len(done) - len(refused)
        for message in pending.messages:
            if message.message_id in failed:
                summary.keep(message, PUT_FAILED, f"PutRecords: {failed[message.message_id]}")
            elif message.message_id in refused:
                code = refused[message.message_id]
                summary.keep(message, DELETE_FAILED, f"records put; DeleteMessage: {code}")
        self.progress(
            f"put {len(outcome.put)} of {len(pending.records)} records in {outcome.calls} "
            f"calls; deleted {len(done) - len(refused)} of {len(pending.messages)} messages"
        )
        if outcome.stopped is not None:
            summary.stopped = outcome.stopped
            self.progress(f"stopped: the stream refused a whole call ({outcome.stopped})")
