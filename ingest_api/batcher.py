"""Group commit of many requests' trades into shared Kinesis PutRecords calls.

Each request hands its records over and waits on one future, resolved only when Kinesis accepted
every record of that request or when the retry budget for it ran out; the outcome names the ids
that are durable. Records queue in arrival order; a call leaves when 500 records or 5 MiB are
queued, or when the oldest queued record has lingered ``linger`` seconds, and at most
``concurrency`` calls are in flight, so under load the queue grows while calls are out and the next
call carries more. With aggregation (AGGREGATION=true) the records of a call are packed into KPL
aggregated records per shard (``tradestream.aggregation``); a request then shares Kinesis records,
not only calls, with others, and its trades are durable when the aggregates holding them are.
Entries Kinesis refuses (per-entry ``ErrorCode`` or a failed call) are sent again, and only they,
whole (an aggregate as the same bytes), after exponential backoff with full jitter, when
``tradestream.retry`` says another attempt may succeed (the others fail at once). Memory is
bounded: beyond ``max_buffered`` unsettled records ``put`` refuses at once instead of queueing.

Single event loop; no locks. Not handled here: ordering per partition key across retries (a
resent record lands after later ones, as with any PutRecords retry; consumers order by ``t``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tradestream import kinesis
from tradestream.aggregation import (
    AGGREGATION_DEFAULT,
    AGGREGATION_DEFAULT_MAX_BYTES,
    KinesisRecord,
    Packer,
    ShardRouter,
)
from tradestream.kinesis import AnswerMismatchError, Backlog, BatchLimits, PutRecordsClient
from tradestream.limits import KINESIS_PUT_RECORDS_MAX_BYTES, KINESIS_PUT_RECORDS_MAX_RECORDS
from tradestream.retry import Backoff, RetryBudget, error_code, is_retryable_code, is_transient

from .log import logger
from .metrics import Metrics
from .settings import IngestSettings

_PENDING, _ACCEPTED, _FAILED = 0, 1, 2


class BufferFullError(Exception):
    """The buffer cannot take the request without exceeding its bound."""

    code = "BufferFull"


class BatcherClosedError(Exception):
    """The batcher is draining for shutdown and takes no new records."""

    code = "ShuttingDown"


@dataclass(frozen=True)
class BatchPolicy:
    """How requests are grouped into PutRecords calls and how failed entries are retried
    (IngestSettings' values in the units the batcher uses; docs/bench-ingest.md sizes them)."""

    linger: float = 0.005
    concurrency: int = 4
    max_buffered: int = 20_000
    max_attempts: int = 6
    backoff_base: float = 0.05
    backoff_max: float = 2.0
    request_timeout: float = 10.0
    call_timeout: float = 5.0
    max_records: int = KINESIS_PUT_RECORDS_MAX_RECORDS
    max_bytes: int = KINESIS_PUT_RECORDS_MAX_BYTES
    aggregation: bool = AGGREGATION_DEFAULT
    aggregation_max_bytes: int = AGGREGATION_DEFAULT_MAX_BYTES

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> BatchPolicy:
        return cls(
            linger=settings.linger_ms / 1000,
            concurrency=settings.put_concurrency,
            max_buffered=settings.max_buffered_records,
            max_attempts=settings.put_max_attempts,
            backoff_base=settings.put_backoff_base_ms / 1000,
            backoff_max=settings.put_backoff_max_ms / 1000,
            request_timeout=settings.put_timeout_seconds,
            call_timeout=settings.kinesis_call_timeout_seconds,
            aggregation=settings.aggregation,
            aggregation_max_bytes=settings.aggregation_max_bytes,
        )


@dataclass(frozen=True)
class PutOutcome:
    accepted: list[str]
    not_accepted: list[str]

    @property
    def complete(self) -> bool:
        return not self.not_accepted


@dataclass(eq=False)
class _Ticket:
    """One request's share of the buffer."""

    ids: Sequence[str]
    future: asyncio.Future[PutOutcome]
    deadline: float
    status: bytearray
    remaining: int
    abandoned: bool = False
    timer: asyncio.TimerHandle | None = None

    def outcome(self) -> PutOutcome:
        accepted = [i for i, s in zip(self.ids, self.status, strict=True) if s == _ACCEPTED]
        rest = [i for i, s in zip(self.ids, self.status, strict=True) if s != _ACCEPTED]
        return PutOutcome(accepted, rest)


@dataclass(eq=False, slots=True)
class _Entry:
    """One trade of a request, waiting or inside a Kinesis record of a call."""

    ticket: _Ticket
    index: int
    data: bytes
    key: str
    size: int
    enqueued: float


_Record = KinesisRecord[_Entry]


def _wanted(entry: _Entry) -> bool:
    """Whether a waiting trade is still worth sending: its request has not given up."""
    return not entry.ticket.abandoned


class KinesisBatcher:
    def __init__(
        self,
        client: PutRecordsClient,
        stream_name: str,
        policy: BatchPolicy | None = None,
        *,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        shards: ShardRouter | None = None,
    ) -> None:
        """``shards`` (with ``policy.aggregation``) groups aggregates per shard; without it they
        are grouped per partition key."""
        self.client = client
        self.stream_name = stream_name
        self.policy = policy or BatchPolicy()
        self.metrics = metrics or Metrics()
        self._limits = BatchLimits(self.policy.max_records, self.policy.max_bytes)
        self._budget = RetryBudget(
            self.policy.max_attempts,
            # Jitter only, not security.
            Backoff(self.policy.backoff_base, self.policy.backoff_max, rng or random.Random()),
        )
        self._packer: Packer[_Entry] = Packer(
            self.policy.aggregation_max_bytes if self.policy.aggregation else None, shards
        )
        self._backlog: Backlog[_Entry] = Backlog()
        # Kinesis records refused and due again: they go first, whole, before new trades.
        self._resends: Backlog[_Record] = Backlog()
        self._buffered = 0
        self._tickets: set[_Ticket] = set()
        self._wakeup = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._calls: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def closing(self) -> bool:
        return self._closing

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="kinesis-batcher")

    async def close(self, deadline: float) -> None:
        """Stop taking records, flush what is buffered within ``deadline`` seconds, then give up
        the rest (their requests learn which of their trades are durable)."""
        self._closing = True
        self._wakeup.set()
        self._batch_ready.set()
        try:
            async with asyncio.timeout(deadline):
                await self._drained.wait()
        except TimeoutError:
            logger.warning(
                "shutdown deadline reached with records unsent",
                extra={"buffered": self._buffered, "deadline_s": deadline},
            )
        for timer in self._timers:
            timer.cancel()
        pending = [t for t in (self._runner, *self._calls) if t is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for ticket in list(self._tickets):
            self._finish(ticket)

    # -- producer side ----------------------------------------------------------------------

    async def put(self, records: Sequence[tuple[str, str, bytes]]) -> PutOutcome:
        """Queue ``(id, partition_key, data)`` records; wait until all are settled or time is up."""
        if self._closing:
            raise BatcherClosedError("the service is shutting down; retry on another instance")
        if not records:
            return PutOutcome([], [])
        if self._buffered + len(records) > self.policy.max_buffered:
            raise BufferFullError("the service is saturated; retry shortly")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        ticket = _Ticket(
            ids=[record_id for record_id, _, _ in records],
            future=loop.create_future(),
            deadline=now + self.policy.request_timeout,
            status=bytearray(len(records)),
            remaining=len(records),
        )
        self._tickets.add(ticket)
        # The size is kinesis.record_size's, inlined: a call per record would cost ~70 ns, 3% of
        # the service's CPU per trade.
        self._backlog.extend(
            [
                _Entry(ticket, index, data, key, len(data) + len(key.encode()), now)
                for index, (_, key, data) in enumerate(records)
            ]
        )
        self._buffered += len(records)
        self.metrics.buffered.set(self._buffered)
        self._drained.clear()
        self._wakeup.set()
        if self._packer.ready(self._backlog, self._limits):
            self._batch_ready.set()
        # One timer per request (cheaper than asyncio.timeout around the await). If the client
        # goes away, the await cancels the future; its records still go out and settle as usual.
        ticket.timer = loop.call_later(self.policy.request_timeout, self._expire, ticket)
        return await ticket.future

    # -- consumer side ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._backlog.entries and not self._resends.entries:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._linger()
            await self._slots.acquire()
            await self._packer.prepare()
            batch = self._take()
            if not batch:
                self._slots.release()
                continue
            call = asyncio.create_task(self._send(batch))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _linger(self) -> None:
        """Give concurrent requests a moment to join the oldest queued record's call."""
        if (
            self._closing
            or self._resends.entries
            or self._packer.ready(self._backlog, self._limits)
        ):
            return
        wait = self._backlog.entries[0].enqueued + self.policy.linger - time.monotonic()
        if wait <= 0:
            return
        self._batch_ready.clear()
        try:
            async with asyncio.timeout(wait):
                await self._batch_ready.wait()
        except TimeoutError:
            pass

    def _take(self) -> list[_Record]:
        """Resends first, then new trades packed into Kinesis records, up to the limits; trades
        whose requests gave up are settled, not sent."""
        resends = self._resends.take(self._limits)
        batch = [r for r in resends if any(map(_wanted, r.users))]
        given_up = [e for r in resends for e in r.users if not _wanted(e)]
        batch, dropped = self._packer.pack(self._backlog, self._limits, batch, _wanted)
        if given_up or dropped:
            for entry in (*given_up, *dropped):
                self._settle(entry, ok=False)
            self.metrics.buffered.set(self._buffered)
        return batch

    async def _send(self, batch: list[_Record]) -> None:
        metrics = self.metrics
        try:
            metrics.batch_size.observe(len(batch))
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.policy.call_timeout):
                    response = await self.client.put_records(
                        StreamName=self.stream_name, Records=kinesis.put_records_entries(batch)
                    )
            except Exception as exc:
                metrics.put_calls.labels("error").inc()
                logger.warning(
                    "PutRecords call failed",
                    extra={"error": error_code(exc), "records": len(batch)},
                )
                self._retry_or_fail(batch, retryable=is_transient(exc))
                return
            finally:
                metrics.put_latency.observe(time.perf_counter() - started)
            self._apply(batch, response)
        finally:
            self._slots.release()

    def _apply(self, batch: list[_Record], response: dict[str, Any]) -> None:
        try:
            accepted, refused = kinesis.split_answer(batch, response)
        except AnswerMismatchError as exc:
            logger.error(str(exc), extra={"records": len(batch)})
            self.metrics.put_calls.labels("error").inc()
            self._retry_or_fail(batch, retryable=True)
            return
        self._packer.answered(batch, response)
        self._settle_accepted(accepted)
        self.metrics.put_calls.labels("partial" if refused else "ok").inc()
        if refused:
            retry = [record for record, code in refused if is_retryable_code(code)]
            fatal = [record for record, code in refused if not is_retryable_code(code)]
            if fatal:
                self._retry_or_fail(fatal, retryable=False)
            if retry:
                self._retry_or_fail(retry, retryable=True)

    def _retry_or_fail(self, records: Sequence[_Record], *, retryable: bool) -> None:
        # One wait for the group, sized by its most-tried record: the backoff grows per retry.
        delay = self._budget.delay(1 + max(r.attempts for r in records))
        resend_at = time.monotonic() + delay
        again: list[_Record] = []
        for record in records:
            record.attempts += 1
            wanted = False
            if retryable and self._budget.allows(record.attempts):
                # An aggregate goes again whole while one of its requests still waits for it;
                # trades of requests that cannot wait that long are failed now (their requests
                # are answered with what is durable), though they ride along.
                for entry in record.users:
                    if resend_at < entry.ticket.deadline and not entry.ticket.abandoned:
                        wanted = True
                    else:
                        self._settle(entry, ok=False)
            if wanted:
                again.append(record)
            else:
                for entry in record.users:
                    self._settle(entry, ok=False)
        self.metrics.buffered.set(self._buffered)
        if again:
            self.metrics.put_retries.inc(len(again))
            self.metrics.trades_retried.inc(sum(len(r.users) for r in again))
            loop = asyncio.get_running_loop()
            timer: asyncio.TimerHandle | None = None

            def requeue() -> None:
                if timer is not None:
                    self._timers.discard(timer)
                self._resends.extend(again)
                self._wakeup.set()
                self._batch_ready.set()

            timer = loop.call_later(delay, requeue)
            self._timers.add(timer)

    # -- bookkeeping ------------------------------------------------------------------------

    def _settle_accepted(self, batch: Sequence[_Record]) -> None:
        """``_settle(entry, ok=True)`` for the trades of many Kinesis records, in one pass (500
        calls cost ~0.5 ms)."""
        settled = aggregates = 0
        for record in batch:
            users = record.users
            aggregates += len(users) > 1
            for entry in users:
                ticket = entry.ticket
                if ticket.status[entry.index] == _PENDING:
                    ticket.status[entry.index] = _ACCEPTED
                    ticket.remaining -= 1
                    settled += 1
                    if ticket.remaining == 0:
                        self._finish(ticket)
        self._buffered -= settled
        metrics = self.metrics
        # Trades settled by this answer: one whose request already failed (it timed out while its
        # record waited) was counted as failed then, so accepted + failed reconcile.
        metrics.trades_accepted.inc(settled)
        metrics.kinesis_records_put.inc(len(batch))
        if aggregates:
            metrics.aggregates_put.inc(aggregates)
        metrics.buffered.set(self._buffered)
        if self._buffered == 0:
            self._drained.set()

    def _settle(self, entry: _Entry, *, ok: bool) -> None:
        ticket = entry.ticket
        if ticket.status[entry.index] != _PENDING:
            return
        ticket.status[entry.index] = _ACCEPTED if ok else _FAILED
        ticket.remaining -= 1
        self._buffered -= 1
        if not ok:
            self.metrics.trades_failed.inc()
        if ticket.remaining == 0:
            self._finish(ticket)
        if self._buffered == 0:
            self._drained.set()

    def _expire(self, ticket: _Ticket) -> None:
        """The request's time is up: answer with what is durable so far. Its records still
        queued are dropped (the client is told to resend them); records already in a call may
        still land, which deterministic ids make harmless."""
        ticket.abandoned = True
        self._finish(ticket)

    def _finish(self, ticket: _Ticket) -> PutOutcome:
        outcome = ticket.outcome()
        self._tickets.discard(ticket)
        if ticket.timer is not None:
            ticket.timer.cancel()
        if not ticket.future.done():
            ticket.future.set_result(outcome)
        return outcome
