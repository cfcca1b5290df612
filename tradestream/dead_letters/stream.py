"""The stream side of a redrive: reading a DLQ message's records back by sequence number, and
putting records back with PutRecords.

Reading back (on-failure messages carry batch metadata only; a hotstore message too large for SQS
carries no data): GetShardIterator AT_SEQUENCE_NUMBER at the first record, then GetRecords until
the last one. Records come back as they were put: a KPL aggregate stays one, and is put back as
one (the consumers open it); for a poison user record of an aggregate (the message names its
sub-sequence number) the aggregate is opened and only that user record is put back.

The records are gone, and the message is kept, when the shard or the stream no longer exists,
when Kinesis refuses the sequence number (past the retention period it may answer
InvalidArgumentException), or when the first record it returns is not the one asked for (an
iterator at a trimmed position starts at the oldest record still retained).

Putting back: calls of at most 500 records and 5 MiB (``tradestream.kinesis``), only the entries
Kinesis refused sent again, with backoff, within the budget (``tradestream.retry``). A record is
put with its data and partition key; Kinesis does not return an explicit hash key, so a record
put with one may land on another shard now (a user record's explicit hash key, which the DLQ
message names, is not used either). Nothing here keeps the records' order: the sinks are
idempotent by the trade id, so order and a second copy do not matter to them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from tradestream import kpl
from tradestream.dead_letters.messages import DlqMessage
from tradestream.kinesis import (
    AnswerMismatchError,
    Backlog,
    BatchLimits,
    put_records_entries,
    record_size,
    split_answer,
)
from tradestream.retry import RetryBudget, error_code, is_retryable_code, is_transient

# GetRecords returns at most 10,000 records per call.
GET_RECORDS_MAX = 10_000
# A shard can answer empty pages while records lie further on (MillisBehindLatest > 0); past this
# many in a row the range is given up on rather than polled forever.
MAX_EMPTY_PAGES = 100
_GONE = {"ResourceNotFoundException", "InvalidArgumentException"}


class NotRetainedError(Exception):
    """The stream no longer holds the message's records: it cannot be redriven."""

    code = "NotRetained"


class ReadFailedError(Exception):
    """The records could not be read back (Kinesis failed, or they differ from the message)."""

    code = "ReadFailed"


@dataclass(slots=True)
class RedriveRecord:
    """One record to put back, and the DLQ message it belongs to (a ``PendingRecord`` of
    ``tradestream.kinesis``)."""

    message_id: str
    data: bytes
    key: str  # the partition key
    size: int = field(default=0, compare=False)

    @classmethod
    def of(cls, message_id: str, data: bytes, key: str) -> RedriveRecord:
        return cls(message_id, data, key, record_size(data, key))


def records_of(message: DlqMessage, kinesis: Any, stream_name: str) -> list[RedriveRecord]:
    """The records ``message`` stands for: its own data, or read back from the stream."""
    if message.data is not None and message.partition_key is not None:
        return [RedriveRecord.of(message.message_id, message.data, message.partition_key)]
    if message.undecodable is not None:
        raise ReadFailedError(message.undecodable)
    first, last = message.first_sequence_number, message.last_sequence_number
    if message.shard_id is None or first is None or last is None:
        raise ReadFailedError("the message does not say where its records are")
    found = read_range(kinesis, stream_name, message.shard_id, first, last, message.batch_size)
    if message.sub_sequence_number is not None:
        found = [_user_record(found[0], message.sub_sequence_number, first)]
    if message.data_sha256 is not None:
        (_, data) = found[0]
        if hashlib.sha256(data).hexdigest() != message.data_sha256:
            raise ReadFailedError(
                f"the record at {first} is not the one the message describes (dataSha256 differs)"
            )
    return [RedriveRecord.of(message.message_id, data, key) for key, data in found]


def _user_record(record: tuple[str, bytes], sub_sequence_number: int, at: str) -> tuple[str, bytes]:
    """(partition key, data) of one user record of the aggregate read back at ``at``."""
    key, data = record
    try:
        users = kpl.deaggregate(data, key)
    except kpl.AggregateFormatError as exc:
        raise ReadFailedError(f"the record at {at} is a corrupt aggregate: {exc}") from exc
    if not users[0].aggregated or sub_sequence_number >= len(users):
        raise ReadFailedError(
            f"the record at {at} holds no user record {sub_sequence_number} "
            f"({len(users) if users[0].aggregated else 'not an aggregate'})"
        )
    user = users[sub_sequence_number]
    return user.partition_key, user.data


def read_range(
    kinesis: Any, stream_name: str, shard_id: str, first: str, last: str, expected: int = 0
) -> list[tuple[str, bytes]]:
    """(partition key, data) of the records ``first`` to ``last`` of a shard, in order."""
    where = f"{stream_name}/{shard_id} {first}..{last}"
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=first,
        )["ShardIterator"]
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) in _GONE:
            raise NotRetainedError(f"{where}: {error_code(exc)} ({_message(exc)})") from exc
        raise ReadFailedError(f"{where}: GetShardIterator failed: {error_code(exc)}") from exc
    found: list[tuple[str, bytes]] = []
    end, empty = int(last), 0
    limit = min(GET_RECORDS_MAX, expected) if expected > 0 else GET_RECORDS_MAX
    while True:
        try:
            page = kinesis.get_records(ShardIterator=iterator, Limit=limit)
        except (ClientError, BotoCoreError) as exc:
            raise ReadFailedError(f"{where}: GetRecords failed: {error_code(exc)}") from exc
        for record in page["Records"]:
            sequence = record["SequenceNumber"]
            if not found and int(sequence) != int(first):
                raise NotRetainedError(
                    f"{where}: the shard's first record from there is {sequence}: "
                    "the records were trimmed (past the stream's retention period)"
                )
            if int(sequence) > end:
                raise ReadFailedError(f"{where}: {last} is not in the shard")
            found.append((record["PartitionKey"], bytes(record["Data"])))
            if int(sequence) == end:
                return found
        iterator = page.get("NextShardIterator")
        at_tip = not page["Records"] and not page.get("MillisBehindLatest")
        if iterator is None or at_tip:
            gone = "the shard ended" if iterator is None else "the shard's end was reached"
            raise NotRetainedError(f"{where}: {gone} before {last if found else first}")
        empty = 0 if page["Records"] else empty + 1
        if empty >= MAX_EMPTY_PAGES:
            raise ReadFailedError(f"{where}: {empty} empty GetRecords answers in a row")


def _message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message") or "")
    return str(exc)


# --- putting records back -----------------------------------------------------------------


@dataclass
class PutOutcome:
    put: list[RedriveRecord] = field(default_factory=list)
    failed: list[tuple[RedriveRecord, str]] = field(default_factory=list)  # with the last code
    calls: int = 0
    # Set when a whole call failed for good (or past the budget): the stream is refusing
    # everything, and the code says why. The records not yet put are in ``failed``.
    stopped: str | None = None


def put_records(
    kinesis: Any,
    stream_name: str,
    records: Sequence[RedriveRecord],
    budget: RetryBudget,
    *,
    limits: BatchLimits | None = None,
    sleep: Callable[[float], None],
) -> PutOutcome:
    """Put ``records`` on the stream; what Kinesis refused is resent within ``budget``."""
    limits = limits or BatchLimits()
    outcome = PutOutcome()
    pending: Sequence[RedriveRecord] = records
    attempts = 0
    while pending:
        attempts += 1
        retry, call_error = _round(kinesis, stream_name, pending, limits, outcome)
        if outcome.stopped is not None:
            return outcome
        if retry and not budget.allows(attempts):
            outcome.failed.extend(retry)
            outcome.stopped = call_error  # None when only single entries were refused
            return outcome
        if retry:
            sleep(budget.delay(attempts))
        pending = [record for record, _ in retry]
    return outcome


def _round(
    kinesis: Any,
    stream_name: str,
    pending: Sequence[RedriveRecord],
    limits: BatchLimits,
    outcome: PutOutcome,
) -> tuple[list[tuple[RedriveRecord, str]], str | None]:
    """One pass over ``pending``: what to send again, and the code of a whole call that failed
    transiently in it (if one did)."""
    backlog: Backlog[RedriveRecord] = Backlog()
    backlog.extend(pending)
    retry: list[tuple[RedriveRecord, str]] = []
    call_error: str | None = None
    while backlog:
        batch = backlog.take(limits)
        outcome.calls += 1
        try:
            response = kinesis.put_records(
                StreamName=stream_name, Records=put_records_entries(batch)
            )
            accepted, refused = split_answer(batch, response)
        except ParamValidationError:
            raise  # a bug here, not a condition of the stream
        except (ClientError, BotoCoreError) as exc:
            if is_transient(exc):
                call_error = error_code(exc)
                retry.extend((record, call_error) for record in batch)
                continue
            return _stop(outcome, error_code(exc), batch, backlog, retry)
        except AnswerMismatchError as exc:
            return _stop(outcome, exc.code, batch, backlog, retry)
        outcome.put.extend(accepted)
        for record, code in refused:
            (retry if is_retryable_code(code) else outcome.failed).append((record, code))
    return retry, call_error


def _stop(
    outcome: PutOutcome,
    code: str,
    batch: list[RedriveRecord],
    backlog: Backlog[RedriveRecord],
    retry: list[tuple[RedriveRecord, str]],
) -> tuple[list[tuple[RedriveRecord, str]], str]:
    """Refused for good (access, a missing stream) or an answer that cannot be read: every
    later call would meet the same, so nothing more is sent; all not put fails with ``code``."""
    left = [*batch, *backlog.clear(), *(record for record, _ in retry)]
    outcome.failed.extend((record, code) for record in left)
    outcome.stopped = code
    return [], code
