"""The shard bookkeeping the emulated Kinesis consumers share (event source mapping, Firehose).

Each owns a ``ShardReaders``: it lists the stream's shards, opens one iterator and starts one
reader thread per shard, keeps looking for shards added later (resharding: new shards are read
from TRIM_HORIZON), reads a shard one GetRecords call at a time from its ``ShardCursor`` (an
expired or lost iterator is renewed after the last record fetched), and ends its threads within a
deadline. What a consumer does with the records, and the rest of its per-shard state, stay with
the consumer.

Leases (``tradestream.local.leases``): a shard is read only while this consumer holds its lease.
``start()`` takes every lease it can before it returns; a coordinator thread renews them, looks
for new shards, and takes the leases of shards nobody holds (free, or expired because their owner
died). A shard whose lease is lost (a renewal or a checkpoint refused) is dropped: its reader ends
and its unfinished work is left to the new owner, which resumes after the last durable
checkpoint. Where a shard resumes: after its checkpoint; with none, at the consumer's starting
position (``Lease.iterator_args``).

Threads are daemons, so one stuck in a handler cannot keep the interpreter alive.

A stream deleted under the readers ends them, said once: retrying cannot bring it back. A failed
poll is logged in one line when AWS answered (its error says what happened, e.g. a stream being
deleted is not ACTIVE for a while first), with the traceback otherwise.

Lag, per shard (``KinesisConsumer.lag_ms``, the runtime's ``runtime_iterator_age_milliseconds``):
the iterator age as AWS defines Lambda's IteratorAge and Kinesis' IteratorAgeMilliseconds, the
age now of the last record fetched (from its ApproximateArrivalTimestamp, and at least the last
MillisBehindLatest), or 0 once the shard is idle: its last poll found the tip (no records,
MillisBehindLatest 0) and, for a consumer whose cursor says so (the event source mapping),
nothing fetched is still waiting. The age keeps growing while a consumer is stuck (a poison
batch retried, backpressure), as IteratorAge does on AWS. ``millis_behind_latest`` is the last
GetRecords answer's MillisBehindLatest as it came.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from botocore.exceptions import ClientError

from tradestream.local.leases import Leases, MemoryLeases

log = logging.getLogger(__name__)


def log_poll_failure(shard_id: str, error: Exception) -> None:
    if isinstance(error, ClientError):
        log.warning("polling %s failed (%s); renewing the iterator", shard_id, error)
    else:
        log.exception("polling %s failed; renewing the iterator", shard_id)


@dataclass
class ShardCursor:
    """Where a consumer stands in one shard."""

    shard_id: str
    iterator: str | None = None
    last_fetched: str | None = None  # where to resume if the iterator has to be renewed
    at_tip_since_poll: float | None = None  # start of the last poll that found nothing newer
    closed: bool = False  # the shard was split or merged and every record of it was read
    millis_behind: int = 0  # MillisBehindLatest of the last GetRecords answer
    last_arrival_ms: int | None = None  # ApproximateArrivalTimestamp of the last record fetched
    checkpoint: str | None = None  # last sequence number done, as durable as the leases are
    start_args: dict[str, Any] = field(default_factory=dict)  # where the lease said to start
    lost: bool = False  # the lease went to another owner: stop reading, checkpoint nothing

    def idle_since(self, since: float) -> bool:
        if self.closed:
            return True
        return self.at_tip_since_poll is not None and self.at_tip_since_poll >= since

    def iterator_age_ms(self, now_ms: int) -> int:
        """The age of the last record fetched, at least MillisBehindLatest; 0 once idle."""
        if self.idle_since(float("-inf")):
            return 0
        if self.last_arrival_ms is None:
            return self.millis_behind
        return max(0, now_ms - self.last_arrival_ms, self.millis_behind)


@dataclass(frozen=True)
class Fetched:
    """One GetRecords answer: the raw records, how far behind the tip, when the poll started."""

    records: list[dict[str, Any]]
    millis_behind: int
    polled_at: float


S = TypeVar("S", bound=ShardCursor)
R = TypeVar("R")  # a record as a consumer keeps it


class ShardReaders(Generic[S]):
    """One reader thread per leased shard of ``stream_arn``; ``shards`` (the shards this consumer
    holds) is guarded by ``lock``."""

    def __init__(
        self,
        *,
        kinesis: Any,
        stream_arn: str,
        new_shard: Callable[[str], S],
        read: Callable[[S], None],
        name: str,
        lock: threading.Lock,
        stop: threading.Event,
        refresh_s: float,
        leases: Leases | None = None,
    ) -> None:
        self.kinesis = kinesis
        self.stream_arn = stream_arn
        self.shards: dict[str, S] = {}
        self.threads: list[threading.Thread] = []
        self.leases: Leases = leases if leases is not None else MemoryLeases()
        self._new_shard = new_shard
        self._read = read
        self._name = name
        self._lock = lock
        self._stop = stop
        self._refresh_s = refresh_s
        self._initial: dict[str, dict[str, Any]] = {}  # shard id -> its starting position
        self._readers: dict[str, threading.Thread] = {}  # shard id -> its latest reader
        self._deleted = False  # said once, by whichever reader saw it first
        self._deleted_lock = threading.Lock()

    def start(self, iterator_args: dict[str, Any]) -> None:
        """Take the lease of every current shard nobody holds, open each at its checkpoint (or
        ``iterator_args``) and start reading; returns once every iterator is open, so records put
        afterwards are read (with LATEST too)."""
        for shard_id in self.list_shards():
            self._initial[shard_id] = iterator_args
        self._take_free()
        self._spawn(self._coordinate, f"{self._name}-leases")

    @property
    def lease_tick_s(self) -> float:
        """How often leases are renewed and free ones looked for: a third of their duration, so
        two renewals can fail before a lease expires (KCL renews as often)."""
        return min(self._refresh_s, self.leases.duration_s / 3)

    def checkpoint(self, shard: S, sequence_number: str) -> None:
        """Make ``shard`` done up to ``sequence_number`` durable; a refusal drops the shard.

        Any other failure is logged and left to the next checkpoint, which carries this one: a
        durable checkpoint behind the real one redelivers a little after a crash, never loses.
        """
        if shard.lost:
            return
        try:
            held = self.leases.checkpoint(shard.shard_id, sequence_number)
        except Exception:
            log.exception("checkpointing %s failed; the next checkpoint carries it", shard.shard_id)
            return
        if not held:
            self.drop(shard.shard_id, "its lease was taken by another consumer")

    def drop(self, shard_id: str, why: str) -> None:
        with self._lock:
            shard = self.shards.pop(shard_id, None)
            if shard is not None:
                shard.lost = True
        if shard is not None:
            log.warning("%s: stopped reading %s: %s", self._name, shard_id, why)

    def release(self) -> None:
        """Give up the leases of the shards whose readers ended (a graceful stop): the next
        runtime takes them at once instead of waiting for them to expire."""
        with self._lock:
            ended = [
                shard_id
                for shard_id in self.shards
                if not (reader := self._readers.get(shard_id)) or not reader.is_alive()
            ]
        self.leases.release(ended)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def iterator(self, shard_id: str, args: dict[str, Any]) -> str:
        response = self.kinesis.get_shard_iterator(
            StreamARN=self.stream_arn, ShardId=shard_id, **args
        )
        iterator: str = response["ShardIterator"]
        return iterator

    def fetch(
        self,
        shard: S,
        *,
        limit: int,
        convert: Callable[[dict[str, Any]], R],
        then: Callable[[list[R]], None],
    ) -> Fetched:
        """One GetRecords call on ``shard``. Each record is ``convert``-ed outside the lock (it is
        per-record work); then the cursor moves on and ``then`` takes the converted records in
        one hold of the lock, so no observer sees the one without the other.

        Without an iterator (after a failure) one is opened after the last record fetched or,
        with none fetched yet, after the checkpoint, else where the lease said to start.
        """
        if shard.iterator is None:
            resume_after = shard.last_fetched or shard.checkpoint
            args = (
                {
                    "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                    "StartingSequenceNumber": resume_after,
                }
                if resume_after
                else shard.start_args
            )
            shard.iterator = self.iterator(shard.shard_id, args)
        polled_at = time.monotonic()
        response = self.kinesis.get_records(
            ShardIterator=shard.iterator, StreamARN=self.stream_arn, Limit=limit
        )
        fetched = Fetched(
            records=response["Records"],
            millis_behind=int(response.get("MillisBehindLatest", 0)),
            polled_at=polled_at,
        )
        converted = [convert(raw) for raw in fetched.records]
        with self._lock:
            shard.iterator = response.get("NextShardIterator")
            shard.closed = shard.iterator is None
            shard.millis_behind = fetched.millis_behind
            if fetched.records:
                last = fetched.records[-1]
                shard.last_fetched = last["SequenceNumber"]
                shard.last_arrival_ms = _epoch_ms(last["ApproximateArrivalTimestamp"])
            at_tip = not fetched.records and fetched.millis_behind == 0
            shard.at_tip_since_poll = polled_at if at_tip else None
            then(converted)
        return fetched

    def list_shards(self) -> list[str]:
        shard_ids: list[str] = []
        kwargs: dict[str, Any] = {"StreamARN": self.stream_arn}
        while True:
            page = self.kinesis.list_shards(**kwargs)
            shard_ids.extend(shard["ShardId"] for shard in page["Shards"])
            if not page.get("NextToken"):
                return shard_ids
            kwargs = {"NextToken": page["NextToken"]}

    def still_running(self, threads: list[threading.Thread], deadline: float) -> list[str]:
        """Join ``threads`` until ``deadline`` (a ``time.monotonic()`` value); the names of those
        still alive then."""
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            log.warning("%s threads still running at the deadline: %s", self._name, alive)
        return alive

    def stream_deleted(self, error: Exception) -> bool:
        """Whether ``error`` says the stream no longer exists; then the caller's reader ends.

        Logged once for all the readers, without a traceback: the cause is not in this process.
        """
        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else ""
        if code != "ResourceNotFoundException":
            return False
        with self._deleted_lock:
            first, self._deleted = not self._deleted, True
        if first:
            log.error(
                "%s: stream %s no longer exists (deleted?); stopped reading it. Deploy the "
                "stream again and restart this process to resume.",
                self._name,
                self.stream_arn,
            )
        return True

    def _take_free(self) -> None:
        """Take the lease of every known shard this consumer does not read, where it is free."""
        with self._lock:
            wanted = [shard_id for shard_id in self._initial if shard_id not in self.shards]
        for shard_id in wanted:
            reader = self._readers.get(shard_id)
            if reader is not None and reader.is_alive():
                continue  # a dropped reader finishing its batch: never two readers of a shard
            lease = self.leases.take(shard_id)
            if lease is not None:
                self._add(shard_id, lease.iterator_args(self._initial[shard_id]), lease.checkpoint)

    def _add(self, shard_id: str, start_args: dict[str, Any], checkpoint: str | None) -> None:
        shard = self._new_shard(shard_id)
        shard.start_args = start_args
        shard.checkpoint = checkpoint
        shard.iterator = self.iterator(shard_id, start_args)
        with self._lock:
            self.shards[shard_id] = shard
        thread = threading.Thread(
            target=lambda: self._read(shard), name=f"{self._name}-{shard_id}", daemon=True
        )
        self.threads.append(thread)
        self._readers[shard_id] = thread
        thread.start()

    def _coordinate(self) -> None:
        """Renew the leases held, drop the lost ones, find new shards, take free leases."""
        next_listing = time.monotonic() + self._refresh_s
        while not self._stop.wait(self.lease_tick_s):
            try:
                with self._lock:
                    held = list(self.shards)
                for shard_id in self.leases.renew(held):
                    self.drop(shard_id, "its lease expired and was taken by another consumer")
                if time.monotonic() >= next_listing:
                    next_listing = time.monotonic() + self._refresh_s
                    self._discover()
                self._take_free()
            except Exception as exc:
                if self.stream_deleted(exc):
                    return
                log.exception("%s: renewing or taking leases failed; retrying", self._name)

    def _discover(self) -> None:
        for shard_id in self.list_shards():
            if shard_id not in self._initial:
                log.info("new shard %s: reading it from TRIM_HORIZON", shard_id)
                self._initial[shard_id] = {"ShardIteratorType": "TRIM_HORIZON"}


class KinesisConsumer(Generic[S]):
    """What both emulations are built on: one lock for their state, one stop flag, and their
    ``ShardReaders`` calling ``_poll_shard`` for every shard; ``with consumer:`` starts it and
    stops it."""

    def __init__(
        self,
        *,
        kinesis: Any,
        stream_arn: str,
        new_shard: Callable[[str], S],
        name: str,
        refresh_s: float,
        leases: Leases | None = None,
    ) -> None:
        self._kinesis = kinesis
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._readers = ShardReaders(
            kinesis=kinesis,
            stream_arn=stream_arn,
            new_shard=new_shard,
            read=self._poll_shard,
            name=name,
            lock=self._lock,
            stop=self._stop,
            refresh_s=refresh_s,
            leases=leases,
        )
        self._shards = self._readers.shards  # guarded by self._lock

    def _poll_shard(self, shard: S) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 10) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Polling: started, not stopped, and some shard reader thread alive (the dashboard's
        health of the emulation)."""
        return not self._stop.is_set() and any(t.is_alive() for t in self._readers.threads)

    def lag_ms(self) -> dict[str, int]:
        """Shard id -> iterator age in milliseconds, now (see the module's docstring)."""
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            return {shard_id: s.iterator_age_ms(now_ms) for shard_id, s in self._shards.items()}

    def millis_behind_latest(self) -> dict[str, int]:
        """Shard id -> MillisBehindLatest of its last GetRecords answer."""
        with self._lock:
            return {shard_id: s.millis_behind for shard_id, s in self._shards.items()}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _epoch_ms(arrival: datetime | float) -> int:
    """An ApproximateArrivalTimestamp (boto3 gives a datetime) in epoch milliseconds."""
    seconds = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
    return round(seconds * 1000)
