"""AWS's per-shard write limits, enforced by the embedded Kinesis (moto, in its process of its own).

What AWS documents: a shard takes up to 1,000 records/s and 1 MiB/s of writes, counting data plus
partition key. A PutRecords call over it is answered HTTP 200 with ``ErrorCode``
``ProvisionedThroughputExceededException`` on the refused entries, whose ``ErrorMessage`` names
the shard, the stream and the account ("Rate exceeded for shard shardId-000000000001 in stream
exampleStreamName under account 111111111111."), and ``FailedRecordCount`` counts them; a
PutRecord over it is refused with HTTP 400 and that code.

How AWS measures "per second" it does not document. The KPL's rate limiter, built to keep one
producer just under the service's limit, is a token bucket per shard for records and another for
bytes; so is this: each shard's two buckets refill continuously at the limit and hold at most one
second's worth. An idle shard takes a burst of 1,000 records (or 1 MiB) at once, and a busy one
the limit on average, which is what a producer sees on AWS: the excess of a burst refused, and
taken once it is resent a moment later.

Enforced at moto's Kinesis backend, inside the moto process: moto has decoded the request
whatever its wire format, and an entry is charged to the shard moto's own routing picks (MD5 of
the partition key as a 128-bit integer, or the ExplicitHashKey, within the shard's hash key
range), so the budget charged is the shard the record is then written to. Only the admitted
entries reach moto's ``put_records``; the answers are merged back in the request's order.

Entries are judged in the call's order; once a shard refuses an entry of a call it refuses the
rest of that call's entries for it too, so a partition key's records are never reordered within
one call by a smaller record slipping past a refused larger one.

Not emulated: the read limits (5 GetRecords calls/s, 2 MiB/s per shard), on-demand streams'
stream-level scaling (their shards are limited like provisioned ones here), the control-plane
API rates, and KMS throttling of encrypted streams.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradestream.kinesis import record_size
from tradestream.limits import (
    KINESIS_MAX_RECORD_BYTES,
    KINESIS_PUT_RECORDS_MAX_BYTES,
    KINESIS_PUT_RECORDS_MAX_RECORDS,
    KINESIS_SHARD_WRITE_BYTES_PER_SECOND,
    KINESIS_SHARD_WRITE_RECORDS_PER_SECOND,
)

THROTTLED = "ProvisionedThroughputExceededException"


def rate_exceeded_message(shard_id: str, stream_name: str, account_id: str) -> str:
    """AWS's own wording for a throttled entry (PutRecords) or call (PutRecord)."""
    return f"Rate exceeded for shard {shard_id} in stream {stream_name} under account {account_id}."


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` held; starts full (an idle shard)."""

    rate: float
    capacity: float
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def refill(self, now: float) -> None:
        if self.updated is not None:
            # A clock that steps back (it should not: monotonic) adds nothing rather than taking.
            self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now


@dataclass
class ShardBudget:
    """One shard's write budget: a record bucket and a byte bucket, one second of each."""

    records_per_second: int = KINESIS_SHARD_WRITE_RECORDS_PER_SECOND
    bytes_per_second: int = KINESIS_SHARD_WRITE_BYTES_PER_SECOND
    records: TokenBucket = field(init=False)
    bytes: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self.records = TokenBucket(self.records_per_second, self.records_per_second)
        self.bytes = TokenBucket(self.bytes_per_second, self.bytes_per_second)

    def admit(self, size: int, now: float) -> bool:
        """Take one record of ``size`` bytes if both buckets hold enough; False leaves them be."""
        self.records.refill(now)
        self.bytes.refill(now)
        if self.records.tokens < 1 or self.bytes.tokens < size:
            return False
        self.records.tokens -= 1
        self.bytes.tokens -= size
        return True


Clock = Callable[[], float]


class ShardLimits:
    """Every shard's budget, keyed by the shard itself (a recreated stream's shards start idle).

    Thread-safe: moto's server answers requests on several threads.
    """

    def __init__(
        self,
        *,
        records_per_second: int = KINESIS_SHARD_WRITE_RECORDS_PER_SECOND,
        bytes_per_second: int = KINESIS_SHARD_WRITE_BYTES_PER_SECOND,
        clock: Clock = time.monotonic,
    ) -> None:
        self._records_per_second = records_per_second
        self._bytes_per_second = bytes_per_second
        self._clock = clock
        self._lock = threading.Lock()
        # Weak keys: moto's shard objects; a budget goes when its shard does.
        self._budgets: weakref.WeakKeyDictionary[Any, ShardBudget] = weakref.WeakKeyDictionary()

    def admit(self, entries: Sequence[tuple[Any, int]]) -> list[bool]:
        """For each ``(shard, size)`` of one call, in order: is it written (True) or refused?"""
        with self._lock:
            now = self._clock()
            refused: set[int] = set()  # id() of shards that refused an entry of this call
            verdicts = []
            for shard, size in entries:
                if shard is None:
                    # No shard's hash range holds the key: moto answers that itself.
                    verdicts.append(True)
                    continue
                admitted = id(shard) not in refused and self._budget(shard).admit(size, now)
                if not admitted:
                    refused.add(id(shard))
                verdicts.append(admitted)
            return verdicts

    def _budget(self, shard: Any) -> ShardBudget:
        budget = self._budgets.get(shard)
        if budget is None:
            budget = ShardBudget(self._records_per_second, self._bytes_per_second)
            self._budgets[shard] = budget
        return budget


def _within_call_limits(records: Sequence[dict[str, Any]]) -> bool:
    """Whether moto would take the call as a whole; if not, it must see the call untouched and
    refuse it with AWS's error (a subset could slip under the 500-record or 5 MiB limit)."""
    if len(records) > KINESIS_PUT_RECORDS_MAX_RECORDS:
        return False
    sizes = [len(r.get("Data") or b"") + len(r.get("PartitionKey") or "") for r in records]
    # A record above 1 MiB is refused by moto with AWS's own error, which no resend can heal;
    # judged by the budgets it would get a throttle instead, which callers retry in vain.
    if any(size > KINESIS_MAX_RECORD_BYTES for size in sizes):
        return False
    return sum(sizes) <= KINESIS_PUT_RECORDS_MAX_BYTES


def install(limits: ShardLimits) -> None:
    """Put ``limits`` in front of moto's Kinesis writes, in this (the moto server's) process.

    moto offers no hook for this, so its backend's two write methods are wrapped; the wrappers
    call the originals with the admitted entries only.
    """
    # Imported here: only the moto process loads moto; the budget arithmetic needs none of it.
    from moto.core.exceptions import JsonRESTError
    from moto.kinesis.models import KinesisBackend

    class ProvisionedThroughputExceededError(JsonRESTError):
        code = 400

        def __init__(self, message: str) -> None:
            super().__init__(error_type=THROTTLED, message=message)

    put_records = KinesisBackend.put_records
    put_record = KinesisBackend.put_record

    def limited_put_records(
        self: KinesisBackend, stream_arn: str, stream_name: str, records: list[dict[str, Any]]
    ) -> dict[str, Any]:
        stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        if not _within_call_limits(records):
            return put_records(self, stream_arn, stream_name, records)
        shards = [
            # Missing keys as moto's own put_records passes them: it refuses those itself.
            stream.get_shard_for_key(r.get("PartitionKey"), r.get("ExplicitHashKey"))  # type: ignore[arg-type]
            for r in records
        ]
        sizes = [record_size(r.get("Data") or b"", r.get("PartitionKey") or "") for r in records]
        verdicts = limits.admit(list(zip(shards, sizes, strict=True)))
        admitted = [r for r, ok in zip(records, verdicts, strict=True) if ok]
        written = iter(
            put_records(self, stream_arn, stream_name, admitted)["Records"] if admitted else []
        )
        answers: list[dict[str, Any]] = []
        for shard, ok in zip(shards, verdicts, strict=True):
            if ok:
                answers.append(next(written))
            else:
                assert shard is not None  # an entry no shard holds is always admitted
                message = rate_exceeded_message(shard.shard_id, stream.stream_name, self.account_id)
                answers.append({"ErrorCode": THROTTLED, "ErrorMessage": message})
        return {"FailedRecordCount": verdicts.count(False), "Records": answers}

    def limited_put_record(
        self: KinesisBackend,
        stream_arn: str,
        stream_name: str,
        partition_key: str,
        explicit_hash_key: str,
        data: bytes,
    ) -> tuple[str, str]:
        stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        shard = stream.get_shard_for_key(partition_key, explicit_hash_key)
        if shard is not None and not limits.admit([(shard, record_size(data, partition_key))])[0]:
            raise ProvisionedThroughputExceededError(
                rate_exceeded_message(shard.shard_id, stream.stream_name, self.account_id)
            )
        return put_record(self, stream_arn, stream_name, partition_key, explicit_hash_key, data)

    KinesisBackend.put_records = limited_put_records  # type: ignore[method-assign]
    KinesisBackend.put_record = limited_put_record  # type: ignore[method-assign]
