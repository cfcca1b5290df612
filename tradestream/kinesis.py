"""Kinesis PutRecords as every producing path uses it: what a record counts for against the
limits, how waiting records are cut into calls, and which entries of an answer failed with which
code.

The producer's publisher (one call in flight, resends topped up with new records) and the ingest
service's batcher (several calls in flight, each request waiting on its own records) queue and
settle differently; these rules they share. Entries are the caller's own objects: anything with
``data``, ``key`` (the partition key) and ``size`` (``record_size`` of the two).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from tradestream.limits import (
    KINESIS_MAX_RECORD_BYTES,
    KINESIS_PUT_RECORDS_MAX_BYTES,
    KINESIS_PUT_RECORDS_MAX_RECORDS,
)


class PutRecordsClient(Protocol):
    """The one call the producing paths make: the aiobotocore client's, or ingest's direct one."""

    async def put_records(
        self, *, StreamName: str, Records: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]: ...


class PendingRecord(Protocol):
    data: bytes
    key: str
    size: int


E = TypeVar("E", bound=PendingRecord)


def record_size(data: bytes, partition_key: str) -> int:
    """Bytes a record counts for against Kinesis' limits: the data plus the partition key."""
    return len(data) + len(partition_key.encode())


@dataclass(frozen=True)
class BatchLimits:
    """How much one PutRecords call may carry; AWS's limits unless a caller wants less."""

    max_records: int = KINESIS_PUT_RECORDS_MAX_RECORDS
    max_bytes: int = KINESIS_PUT_RECORDS_MAX_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= KINESIS_PUT_RECORDS_MAX_RECORDS:
            raise ValueError(f"max_records must be 1..{KINESIS_PUT_RECORDS_MAX_RECORDS}")
        # A call must fit one record of the largest size, or such a record could never be sent.
        if not KINESIS_MAX_RECORD_BYTES <= self.max_bytes <= KINESIS_PUT_RECORDS_MAX_BYTES:
            raise ValueError("max_bytes must be between 1 MiB and 5 MiB")


class Backlog(Generic[E]):
    """Records waiting for a call, oldest first, with their total size kept as they come and go
    (resends go back to the front)."""

    __slots__ = ("entries", "size")

    def __init__(self) -> None:
        self.entries: deque[E] = deque()
        self.size = 0

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, entry: E) -> None:
        self.entries.append(entry)
        self.size += entry.size

    def extend(self, entries: Sequence[E]) -> None:
        self.entries.extend(entries)
        self.size += sum(e.size for e in entries)

    def push_front(self, entries: Sequence[E]) -> None:
        self.entries.extendleft(reversed(entries))
        self.size += sum(e.size for e in entries)

    def full(self, limits: BatchLimits) -> bool:
        """Whether the waiting records fill a call: no reason to wait for more."""
        return len(self.entries) >= limits.max_records or self.size >= limits.max_bytes

    def take(self, limits: BatchLimits, batch: list[E] | None = None) -> list[E]:
        """The oldest records that fit one call, after those already in ``batch`` (resends)."""
        batch = [] if batch is None else batch
        size = sum(e.size for e in batch)
        taken = 0
        entries, max_records, max_bytes = self.entries, limits.max_records, limits.max_bytes
        while entries and len(batch) < max_records:
            entry = entries[0]
            if batch and size + entry.size > max_bytes:
                break
            entries.popleft()
            batch.append(entry)
            size += entry.size
            taken += entry.size
        self.size -= taken
        return batch

    def clear(self) -> list[E]:
        """Everything waiting, removed."""
        left = list(self.entries)
        self.entries.clear()
        self.size = 0
        return left


def put_records_entries(batch: Iterable[PendingRecord]) -> list[dict[str, Any]]:
    """The ``Records`` parameter of a PutRecords call carrying ``batch``."""
    return [{"Data": e.data, "PartitionKey": e.key} for e in batch]


class AnswerMismatchError(Exception):
    """PutRecords answered another number of entries than it was sent: nothing in the answer
    can be matched to a record."""

    code = "PutRecordsAnswerMismatch"


def split_answer(
    batch: Sequence[E], response: Mapping[str, Any]
) -> tuple[Sequence[E], list[tuple[E, str]]]:
    """The entries Kinesis accepted, and those it refused with their ``ErrorCode``, in order.

    A partial failure is HTTP 200 with an ``ErrorCode`` on each refused entry; only those are
    to be sent again.
    """
    results = response.get("Records") or []
    if len(results) != len(batch):
        raise AnswerMismatchError(f"PutRecords sent {len(batch)} records, answered {len(results)}")
    if response.get("FailedRecordCount") == 0:
        # The usual answer: every entry accepted (Kinesis counts the failed ones), so the entries
        # need not be read one by one. Without the count, they are.
        return batch, []
    accepted: list[E] = []
    refused: list[tuple[E, str]] = []
    for entry, result in zip(batch, results, strict=True):
        code = result.get("ErrorCode")
        if code:
            refused.append((entry, str(code)))
        else:
            accepted.append(entry)
    return accepted, refused
