"""Trades -> Kinesis PutRecords, batched, with partial-failure resends and a bounded buffer.

- Batches hold at most ``batch_max_records`` (<= 500) Kinesis records and ``batch_max_bytes``
  (<= 5 MiB) counting data plus partition key, Kinesis' own accounting. A record above 1 MiB can
  never be accepted: it is dropped by policy at ``put``, counted (``dropped_by_policy``) and logged.
- Aggregation (``aggregation_max_bytes`` set, AGGREGATION=true): the trades waiting for a call are
  packed into KPL aggregated records per shard, each at most ``aggregation_max_bytes``
  (``tradestream.aggregation``); without, each trade is a Kinesis record of its own.
- A batch goes out when it is full, when the buffer is full, or ``linger_ms`` after its first
  record, whichever comes first; one call is in flight at a time, so records of one symbol (the
  partition key) keep their order unless a resend overtakes them, as with any Kinesis producer.
- Partial failures (HTTP 200 with a per-record ``ErrorCode``): only the failed Kinesis records are
  resent, whole (an aggregate as the same bytes), after an exponential backoff with full jitter,
  topped up with new records so every call stays full; a record refused with a code
  ``tradestream.retry`` does not retry is failed at once. Whole-call failures (throttling, 5xx,
  connection errors) resend the whole batch the same way. Other errors (stream not found, access
  denied, bad credentials) cannot heal by retrying: they stop the publisher with a
  ``PublisherError`` carrying AWS's code.
- Retry budget: a Kinesis record is tried at most ``max_put_attempts`` times. Trades whose record
  exhausts it, and trades still unpublished when ``close`` hits its deadline, are never silently
  lost: each is counted in ``failed`` and logged at ERROR ("trade not published") with the full
  record under ``record``, so it can be recovered with ``jq -c 'select(.message == "trade not
  published") | .record'`` and re-sent with ``SOURCE=replay`` (the record keeps its id). A trade
  whose call was cut by the deadline may also have reached the stream; re-sending is harmless
  (same id).
- Backpressure: at most ``buffer_max_records`` accepted-but-unsettled trades exist at any time
  (waiting, in flight or waiting for a resend); ``await put(trade)`` blocks while the buffer is
  full, so memory stays bounded and a slow stream slows the source down.

Counters reconcile in trades (user records): ``received == published + failed + buffered`` at
every moment; Kinesis records are counted apart (``kinesis_records_put``, ``aggregates_put``,
``kinesis_records_retried``).
The SDK's own retries are meant to be off for this client (``tradestream.aws.NO_SDK_RETRIES``) so
that every attempt is counted here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from botocore.exceptions import ClientError

from tradestream import kinesis
from tradestream.aggregation import KinesisRecord, Packer, ShardRouter
from tradestream.kinesis import Backlog, BatchLimits, PutRecordsClient
from tradestream.limits import (
    KINESIS_MAX_RECORD_BYTES,
    KINESIS_PUT_RECORDS_MAX_BYTES,
    KINESIS_PUT_RECORDS_MAX_RECORDS,
)
from tradestream.logs import get_logger
from tradestream.retry import Backoff, RetryBudget, error_code, is_retryable_code, is_transient
from tradestream.trade import Trade

logger = get_logger("producer")

# Called once per PutRecords call with its outcome and duration in seconds: "ok" (every entry
# accepted), "partial" (some refused) or "error" (the call failed as a whole).
PutRecordsObserver = Callable[[str, float], None]


class PublisherError(Exception):
    """The publisher cannot go on; ``code`` is AWS's error code when AWS gave one."""

    def __init__(self, message: str, code: str = "PublisherError") -> None:
        super().__init__(message)
        self.code = code


class PublisherClosedError(PublisherError):
    def __init__(self) -> None:
        super().__init__("the publisher is closed; create a new one", "PublisherClosed")


@dataclass
class PublisherStats:
    # In trades (user records): these reconcile, received == published + failed + buffered.
    received: int = 0  # trades accepted into the buffer
    published: int = 0  # trades Kinesis acknowledged (re-sent duplicates included)
    retried: int = 0  # trades resent (in a Kinesis record sent again after a failed attempt)
    dropped_by_policy: int = 0  # records above 1 MiB, refused at put and logged
    failed: int = 0  # trades given up on (budget or deadline), logged with the record
    put_calls: int = 0  # PutRecords calls made
    call_errors: int = 0  # whole calls that failed and were retried
    buffered: int = 0  # accepted and not yet published or failed
    buffered_peak: int = 0
    # In Kinesis records (PutRecords entries): one per trade without aggregation.
    kinesis_records_put: int = 0  # Kinesis acknowledged, aggregates and plain records
    aggregates_put: int = 0  # of those, KPL aggregates (two trades or more)
    kinesis_records_retried: int = 0  # entries sent again after a failed attempt


@dataclass(slots=True)
class _Entry:
    """One trade waiting, in flight or waiting for a resend (inside its Kinesis record)."""

    trade_id: str
    key: str
    data: bytes
    size: int


_Record = KinesisRecord[_Entry]


def record_size(trade: Trade) -> int:
    """Bytes a trade counts for against Kinesis limits: data plus partition key."""
    return kinesis.record_size(trade.to_record(), trade.s)


class KinesisPublisher:
    def __init__(
        self,
        client: PutRecordsClient,
        stream_name: str,
        *,
        batch_max_records: int = KINESIS_PUT_RECORDS_MAX_RECORDS,
        batch_max_bytes: int = KINESIS_PUT_RECORDS_MAX_BYTES,
        linger_ms: int = 50,
        buffer_max_records: int = 10_000,
        retry: RetryBudget | None = None,
        on_put_records: PutRecordsObserver | None = None,
        aggregation_max_bytes: int | None = None,
        shards: ShardRouter | None = None,
    ) -> None:
        """``retry`` bounds the tries of each Kinesis record (default: 20, 0.1 s doubling to 5 s
        apart); ``on_put_records`` hears about every call (the producer's metrics).
        ``aggregation_max_bytes`` turns aggregation on, with aggregates of at most that size,
        packed per shard of ``shards`` (per partition key without it)."""
        if buffer_max_records < 1:
            raise ValueError("buffer_max_records must be >= 1")
        self.stream_name = stream_name
        self.stats = PublisherStats()
        self.error: PublisherError | None = None
        self._client = client
        self._limits = BatchLimits(batch_max_records, batch_max_bytes)
        self._linger = linger_ms / 1000
        self._budget = retry or RetryBudget(20, Backoff(0.1, 5.0))
        self._packer: Packer[_Entry] = Packer(aggregation_max_bytes, shards)
        self._buffer_max = buffer_max_records
        # Set while the buffer has room: a counter and an event rather than a semaphore, so that
        # settling the ~300 trades of an aggregate is one step, not 300 releases.
        self._room = asyncio.Event()
        self._room.set()
        self._pending: Backlog[_Entry] = Backlog()
        # Packed from _pending: the batch in flight, or the records waiting for a resend.
        self._unsent: list[_Record] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._on_put_records = on_put_records

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kinesis-publisher")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def __aenter__(self) -> KinesisPublisher:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(deadline_seconds=25)

    async def close(self, deadline_seconds: float) -> None:
        """Flush what is buffered within the deadline; whatever is left is failed and logged."""
        self._closing = True
        self._arrived.set()
        self._full.set()
        self._room.set()  # a put waiting for room learns the publisher is closed
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=max(deadline_seconds, 0))
            if not done:
                self._task.cancel()
                await asyncio.wait({self._task})
        reason = "shutdown deadline reached" if self.error is None else f"stopped: {self.error}"
        for record in self._unsent:
            self._fail(record.users, reason)
        self._fail(self._pending.clear(), reason)
        self._unsent = []

    # -- producing side ----------------------------------------------------------------------

    async def put(self, trade: Trade) -> bool:
        """Buffer a trade, waiting while the buffer is full. False if it was dropped by policy."""
        self._check_open()
        data = trade.to_record()
        entry = _Entry(trade.id, trade.s, data, kinesis.record_size(data, trade.s))
        if entry.size > KINESIS_MAX_RECORD_BYTES:
            self.stats.dropped_by_policy += 1
            logger.warning(
                "trade dropped by policy: record above the 1 MiB Kinesis limit",
                extra={"trade_id": entry.trade_id, "bytes": entry.size},
            )
            return False
        while self.stats.buffered >= self._buffer_max and not self._closing:
            self._room.clear()
            await self._room.wait()
        if self._closing:
            raise PublisherClosedError()
        self._pending.append(entry)
        self.stats.received += 1
        self.stats.buffered += 1
        self.stats.buffered_peak = max(self.stats.buffered_peak, self.stats.buffered)
        self._arrived.set()
        if self._batch_ready():
            self._full.set()
        return True

    def _check_open(self) -> None:
        if self._closing:
            raise PublisherClosedError()
        if self._task is not None and self._task.done():
            raise self.error or PublisherClosedError()

    # -- sending side ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while batch := await self._next_batch():
                failed = await self._send(batch)
                self._unsent = [r for r in failed if self._budget.allows(r.attempts)]
                for record in failed:
                    if not self._budget.allows(record.attempts):
                        reason = f"{record.last_error} after {record.attempts} attempts"
                        self._fail(record.users, reason)
                if self._unsent:
                    worst = max(r.attempts for r in self._unsent)
                    await asyncio.sleep(self._budget.delay(worst))
        except Exception as exc:
            # Kept, not raised: the owner sees the task end and reads ``error`` (see app.run).
            self.error = (
                exc
                if isinstance(exc, PublisherError)
                else PublisherError(f"unexpected {type(exc).__name__}: {exc}", type(exc).__name__)
            )
            logger.error(
                "publisher stopped", extra={"code": self.error.code, "reason": str(self.error)}
            )

    def _batch_ready(self) -> bool:
        # A full buffer is ready too: nothing more can arrive until a call settles some.
        return (
            self._packer.ready(self._pending, self._limits)
            or self.stats.buffered >= self._buffer_max
        )

    async def _next_batch(self) -> list[_Record]:
        """Resends first, then new entries up to the limits; empty once closed and drained."""
        if not self._unsent:
            while not self._pending and not self._closing:
                self._arrived.clear()
                await self._arrived.wait()
            if not self._pending:
                return []
            if self._linger and not self._closing and not self._batch_ready():
                self._full.clear()
                # Waiting on an Event loses nothing when it times out (unlike Queue.get).
                try:
                    async with asyncio.timeout(self._linger):
                        await self._full.wait()
                except TimeoutError:
                    pass
        await self._packer.prepare()
        # The very list in _unsent, topped up: whatever happens to the call, close() finds it.
        batch, _ = self._packer.pack(self._pending, self._limits, self._unsent)
        self._unsent = batch
        return batch

    async def _send(self, batch: list[_Record]) -> list[_Record]:
        """One PutRecords call; returns the Kinesis records to try again."""
        stats = self.stats
        for record in batch:
            if record.attempts:
                stats.kinesis_records_retried += 1
                stats.retried += len(record.users)
            record.attempts += 1
        stats.put_calls += 1
        started = time.perf_counter()
        try:
            response = await self._client.put_records(
                StreamName=self.stream_name, Records=kinesis.put_records_entries(batch)
            )
        except Exception as exc:
            self._observe("error", started)
            if is_transient(exc):
                return self._call_failed(batch, error_code(exc))
            if isinstance(exc, ClientError):
                code = error_code(exc)
                raise PublisherError(_advice(code, self.stream_name), code) from exc
            raise
        accepted, refused = kinesis.split_answer(batch, response)
        self._observe("partial" if refused else "ok", started)
        self._packer.answered(batch, response)
        for record in accepted:
            self._settle(len(record.users))
            stats.published += len(record.users)
            stats.aggregates_put += record.aggregated
        stats.kinesis_records_put += len(accepted)
        again = []
        for record, code in refused:
            record.last_error = code
            if is_retryable_code(code):
                again.append(record)
            else:
                self._fail(record.users, f"{code}, which no resend can fix")
        return again

    def _observe(self, outcome: str, started: float) -> None:
        if self._on_put_records is not None:
            self._on_put_records(outcome, time.perf_counter() - started)

    def _call_failed(self, batch: list[_Record], code: str) -> list[_Record]:
        self.stats.call_errors += 1
        logger.warning(
            "PutRecords call failed; retrying", extra={"code": code, "records": len(batch)}
        )
        for record in batch:
            record.last_error = code
        return batch

    def _settle(self, trades: int) -> None:
        self.stats.buffered -= trades
        if self.stats.buffered < self._buffer_max:
            self._room.set()

    def _fail(self, entries: Iterable[_Entry], reason: str) -> None:
        for entry in entries:
            self._settle(1)
            self.stats.failed += 1
            logger.error(
                "trade not published",
                extra={
                    "trade_id": entry.trade_id,
                    "reason": reason,
                    "record": json.loads(entry.data),
                },
            )


def _advice(code: str, stream: str) -> str:
    if code == "ResourceNotFoundException":
        return f"Kinesis stream {stream!r} not found: create it or set STREAM_NAME"
    if code in ("AccessDeniedException", "UnrecognizedClientException"):
        return f"not allowed to PutRecords on {stream!r}: check the credentials and IAM policy"
    return f"PutRecords failed with {code}: not retryable, check the configuration"
