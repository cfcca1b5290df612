"""Emulation of a Firehose delivery stream reading a Kinesis data stream, transforming records
with a Lambda handler invoked in this process, and writing to S3.

Emulated, driven by ``DeliveryStreamSettings`` (read from the template by
``tradestream.local.firehose.settings``):

- one poller thread per shard (GetShardIterator / GetRecords through boto3), polling again at once
  while a shard has a backlog and every ``poll_interval_s`` at its tip; shards created after
  ``start()`` are found by a periodic ListShards and read from TRIM_HORIZON;
- KPL de-aggregation before the transform, as Firehose does for a Kinesis source: an aggregated
  record (``tradestream.kpl``) becomes one event record per user record, each with its own
  recordId, partition key and subsequenceNumber (``firehose_events``); every later stage (the
  buffers, the answer, S3, the error prefix, the counters but ``records_in`` / ``bytes_in``)
  works on user records;
- checkpoints per shard, durable in the lease table when ``leases`` is a ``DynamoDBLeases``
  (``tradestream.local.leases``): a record is checkpointed once the object holding it is in S3
  (or in the error prefix), an aggregate once all its user records are (data or error prefix, or
  Dropped), so a crash loses nothing and a restart re-sends at most what was written after the
  slowest partition's buffer opened (about one buffer interval's worth, aggregates whole); a
  lease per shard keeps two runtimes from both delivering a shard;
- where a shard starts: after its checkpoint; with none, at TRIM_HORIZON by default. AWS's
  delivery stream starts reading when it is created, with the stack; the emulation starts when
  a runtime first runs, which can be later (compose starts the producer on its own schedule), so
  it reads what the stream still retains since then instead of losing it (LATEST on request);
- the Lambda processor's buffer (BufferSizeInMBs, BufferIntervalInSeconds), with the 6 MB request
  limit splitting a batch before the buffer size would;
- AWS's transformation event for a Kinesis source and a Lambda-like context; the response goes
  through JSON as Lambda's would, and is checked as Firehose checks it (every recordId once, a
  valid result, base64 data, the partition keys the prefix needs, ≤ 6 MB);
- NumberOfRetries for invocations that fail as a whole (exception, timeout, invalid response),
  after which every record of the batch goes to the error prefix; ProcessingFailed records go
  there at once; Dropped records are counted and gone;
- S3 BufferingHints per partition (dynamic partitioning with partitionKeyFromLambda), Firehose
  object naming and prefix expressions (``firehose_prefix``), GZIP, FileExtension,
  CustomTimeZone; the error prefix gets one JSON envelope per line (``firehose_events``);
- at-least-once: a record counts as done once its object is written; a failing PutObject is
  retried, with its data kept in the buffer, until it succeeds or ``stop`` gives up;
- how far behind the source it reads, per shard, as ``lag_ms()`` (``kinesis_consumer``: the age
  of the last record read, 0 at the tip), the read side only like Firehose's
  KinesisMillisBehindLatest: records waiting in the buffers do not count. The counters are
  ``stats`` (``runtime_*`` metrics in ``tradestream.local.metrics``).

Not emulated:

- parallel invocations (Firehose invokes about once per shard concurrently; here one at a time),
  the function's concurrency and throttling, GetRecords throttling, CloudWatch logs and metrics
  (DataFreshness among them; the counters are Prometheus');
- source record backup, data format conversion, other processors (the reader refuses them),
  jq partitioning (partitionKeyFromQuery); what Firehose does with a corrupt KPL aggregate (here
  it is handed to the transform as one record, which fails it into the error prefix);
- the 500 active partitions limit, the 512-character limit on evaluated prefixes, the
  DynamicPartitioning RetryOptions, and S3 delivery's 24-hour retry window;
- the delivery stream version in object names is always 1;
- error output buffering: failed records are written as soon as their batch is settled, one
  object per batch, compressed like data objects (not verified against AWS).
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from tradestream import aws
from tradestream.limits import FIREHOSE_TRANSFORM_MAX_PAYLOAD_BYTES
from tradestream.local.firehose.events import (
    FUNCTION_ERROR,
    FUNCTION_TIMED_OUT,
    BatchFailure,
    DeliveryStreamSource,
    RecordOutcome,
    SourceRecord,
    error_envelope,
    from_get_records,
    read_transformation_response,
    response_too_large,
    transformation_event,
)
from tradestream.local.firehose.prefix import (
    PROCESSING_FAILED,
    Context,
    PrefixTemplate,
    object_name,
)
from tradestream.local.firehose.settings import DeliveryStreamSettings
from tradestream.local.firehose.state import (
    DestinationBuffers,
    FirehoseShard,
    FirehoseStats,
    ObjectBuffer,
    PartitionKey,
    ProcessorBuffer,
    RecordRef,
)
from tradestream.local.kinesis_consumer import KinesisConsumer, log_poll_failure
from tradestream.local.lambda_runtime import LambdaContext, function_arn
from tradestream.local.leases import Leases

Handler = Callable[[dict[str, Any], Any], Any]
StartingPosition = Literal["LATEST", "TRIM_HORIZON"]

log = logging.getLogger(__name__)

_GET_RECORDS_LIMIT = 10_000
_DELIVERY_STREAM_VERSION = 1


class FirehoseEmulationError(RuntimeError):
    code = "InvalidArgumentException"


@dataclass(frozen=True)
class _Failed:
    """A record bound for the error prefix."""

    record: SourceRecord
    error: tuple[str, str]
    attempts: int


class FirehoseEmulation(KinesisConsumer[FirehoseShard]):
    """Feeds one Kinesis stream through one transform handler into S3, as Firehose would.

    ``start()`` reads the shard list and opens every shard's iterator before it returns, so with
    LATEST every record put afterwards is delivered. ``wait_caught_up`` waits until everything
    put so far is in S3 (``flush=True`` delivers buffers at once instead of waiting for their
    intervals), ``flush`` delivers what is buffered now, and ``stop`` (or the context manager)
    stops polling and flushes.
    """

    def __init__(
        self,
        *,
        settings: DeliveryStreamSettings,
        handler: Handler | None,
        region: str,
        function_name: str = "transform",
        function_timeout_s: float = 60.0,
        memory_limit_in_mb: int = 256,
        kinesis: Any = None,
        s3: Any = None,
        starting_position: StartingPosition = "TRIM_HORIZON",
        poll_interval_s: float = 0.2,
        retry_delay_s: float = 1.0,
        shard_refresh_s: float = 10.0,
        max_buffered_bytes: int = 64 * 1024 * 1024,
        leases: Leases | None = None,
    ) -> None:
        if settings.processor is not None and handler is None:
            raise FirehoseEmulationError("the delivery stream has a Lambda processor: pass handler")
        account_id = _account(settings.source_stream_arn)
        self.settings = settings
        self.delivery_stream_arn = (
            f"arn:aws:firehose:{region}:{account_id}:deliverystream/{settings.delivery_stream_name}"
        )
        self.function_name = function_name
        processor_arn = settings.processor.lambda_arn if settings.processor else None
        self.lambda_arn = processor_arn or function_arn(region, account_id, function_name)
        self._handler = handler
        self._function_timeout_s = function_timeout_s
        self._memory_limit_in_mb = memory_limit_in_mb
        self._kinesis = kinesis if kinesis is not None else aws.client("kinesis")
        self._s3 = s3 if s3 is not None else aws.client("s3")
        self._starting_position = starting_position
        self._poll_interval_s = poll_interval_s
        self._retry_delay_s = retry_delay_s
        self._max_buffered_bytes = max_buffered_bytes
        self._source = DeliveryStreamSource(
            self.delivery_stream_arn, settings.source_stream_arn, region
        )
        self._prefixes = settings.prefixes()
        self._zone = settings.time_zone()
        self._wake = threading.Event()
        super().__init__(
            kinesis=self._kinesis,
            stream_arn=settings.source_stream_arn,
            new_shard=FirehoseShard,
            name="firehose",
            refresh_s=shard_refresh_s,
            leases=leases,
        )
        self._processor = ProcessorBuffer()
        self._destinations = DestinationBuffers()
        self._in_flight = 0  # records taken from a buffer and not yet written or discarded
        self._forcing = 0  # flush() / wait_caught_up(flush=True) calls in progress
        self._stats = FirehoseStats()
        self._delivery: threading.Thread | None = None
        self._started = False
        self._deadline: float | None = None  # set by stop(): when delivery gives up

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            raise FirehoseEmulationError("an emulation starts once; create a new one to restart")
        self._started = True
        self._readers.start({"ShardIteratorType": self._starting_position})
        self._delivery = threading.Thread(
            target=self._deliver_loop, name="firehose-delivery", daemon=True
        )
        self._delivery.start()

    def stop(self, timeout: float = 30) -> bool:
        """Stop polling, deliver everything buffered, end every thread. True if all ended."""
        deadline = time.monotonic() + timeout
        # The delivery thread gives up a little before the caller stops waiting for it.
        self._deadline = deadline - min(0.5, timeout / 10)
        self._stop.set()
        self._wake.set()
        threads = [*self._readers.threads, *([self._delivery] if self._delivery else [])]
        ended = not self._readers.still_running(threads, deadline)
        if not (self._delivery and self._delivery.is_alive()):
            self._readers.release()  # everything delivered is checkpointed by now
        return ended

    # --- observation ----------------------------------------------------------------------------

    @property
    def stats(self) -> FirehoseStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._stats.snapshot()

    @property
    def bucket(self) -> str:
        return self.settings.bucket_name

    @property
    def data_prefix(self) -> str:
        """Where data objects go (the literal head of Prefix; list objects under it)."""
        return self._prefixes.data.static_head

    @property
    def error_prefix(self) -> str:
        return self._prefixes.error.static_head

    def caught_up(self, *, since: float | None = None) -> bool:
        """Every shard polled to its tip, and every record read is written to S3.

        ``since`` (a ``time.monotonic()`` value) also requires that tip poll to have started at
        or after it, so records put before ``since`` are known to be in S3.
        """
        with self._lock:
            return self._shards_idle(since) and self._empty()

    def wait_caught_up(self, timeout: float, *, flush: bool = False) -> bool:
        """Wait until everything put to the stream before this call is written to S3.

        With ``flush`` the buffers are delivered as soon as the shards are read to their tip,
        instead of when their size or interval says so.
        """
        since = time.monotonic()
        deadline = since + timeout
        with self._forced(flush) as force_now:
            while time.monotonic() < deadline:
                if flush and self._shards_idle_locked(since):
                    force_now()
                if self.caught_up(since=since):
                    return True
                time.sleep(min(0.02, self._poll_interval_s))
            return self.caught_up(since=since)

    def flush(self, timeout: float = 30) -> bool:
        """Deliver every record read so far now, whatever the buffering hints say."""
        deadline = time.monotonic() + timeout
        with self._forced(True) as force_now:
            force_now()
            while time.monotonic() < deadline:
                with self._lock:
                    if self._empty():
                        return True
                time.sleep(0.01)
            with self._lock:
                return self._empty()

    @contextmanager
    def _forced(self, wanted: bool) -> Iterator[Callable[[], None]]:
        forcing = False

        def force_now() -> None:
            nonlocal forcing
            if wanted and not forcing:
                forcing = True
                with self._lock:
                    self._forcing += 1
                self._wake.set()

        try:
            yield force_now
        finally:
            if forcing:
                with self._lock:
                    self._forcing -= 1

    def _shards_idle_locked(self, since: float) -> bool:
        with self._lock:
            return self._shards_idle(since)

    def _shards_idle(self, since: float | None) -> bool:
        if not self._shards:
            return False
        floor = float("-inf") if since is None else since
        return all(shard.idle_since(floor) for shard in self._shards.values())

    def _empty(self) -> bool:
        return (
            not self._processor.records and not self._destinations.buffers and not self._in_flight
        )

    # --- shards ---------------------------------------------------------------------------------

    def _poll_shard(self, shard: FirehoseShard) -> None:
        while not self._stop.is_set() and not shard.closed and not shard.lost:
            if self._backpressure():
                self._stop.wait(self._poll_interval_s)
                continue
            try:
                fetched, behind = self._fetch(shard)
            except Exception as exc:
                if self._readers.stream_deleted(exc):
                    return
                # Network trouble or an expired iterator: renew it after the last fetched record.
                log_poll_failure(shard.shard_id, exc)
                shard.iterator = None
                fetched, behind = 0, 0
                self._stop.wait(self._poll_interval_s)
                continue
            if not fetched and not behind:
                self._stop.wait(self._poll_interval_s)

    def _backpressure(self) -> bool:
        # Bounded memory: stop reading while the transform is this far behind.
        with self._lock:
            return self._processor.size >= self._max_buffered_bytes

    def _fetch(self, shard: FirehoseShard) -> tuple[int, int]:
        def buffer(read: list[tuple[int, list[SourceRecord]]]) -> None:
            records = [record for _, users in read for record in users]
            if records:
                shard.read(records)
                self._processor.add(records, time.monotonic())
                self._stats.records_in += len(read)
                self._stats.bytes_in += sum(size for size, _ in read)
                self._stats.user_records_in += len(records)

        fetched = self._readers.fetch(
            shard,
            limit=_GET_RECORDS_LIMIT,
            # (the Kinesis record's size, its user records): deaggregated outside the lock
            convert=lambda raw: (len(raw["Data"]), from_get_records(shard.shard_id, raw)),
            then=buffer,
        )
        if fetched.records:
            self._wake.set()
        return len(fetched.records), fetched.millis_behind

    # --- delivery -------------------------------------------------------------------------------

    def _deliver_loop(self) -> None:
        while not self._past_deadline():
            stopping = self._stop_expired()
            self._wake.clear()  # before the step: a record read during it wakes the next wait
            try:
                worked = self._deliver_step(force_all=stopping)
            except Exception:
                log.exception("delivery step failed; retrying")
                worked = False
                time.sleep(self._retry_delay_s)
            if stopping:
                with self._lock:
                    if self._empty():
                        return
            elif not worked:
                self._wake.wait(self._next_wait())
        log.error("stopped before everything buffered was written: %s", self.stats)

    def _deliver_step(self, *, force_all: bool) -> bool:
        """Invoke one due batch and/or write the due objects; True if anything was done."""
        now = time.monotonic()
        with self._lock:
            force = force_all or self._forcing > 0
            batch = self._take_batch(now, force)
            self._in_flight += len(batch)
        worked = False
        if batch:
            self._settle(batch)
            worked = True
        with self._lock:
            due = self._destinations.take_due(
                time.monotonic(),
                self.settings.buffer_size_bytes,
                self.settings.buffer_interval_s,
                force=force_all or self._forcing > 0,
            )
            self._in_flight += sum(buffer.records for _, buffer in due)
        for key, buffer in due:
            self._write_data(key, buffer)
            worked = True
        return worked

    def _take_batch(self, now: float, force: bool) -> list[SourceRecord]:
        processor = self.settings.processor
        if processor is None:  # no transform: every record goes straight to its S3 buffer
            if not self._processor.due(now, 0, 0.0, force=force):
                return []
            return self._processor.take(self._processor.size, now)
        size, interval = processor.buffer_size_bytes, processor.buffer_interval_s
        if not self._processor.due(now, size, interval, force=force):
            return []
        return self._processor.take(size, now)

    def _next_wait(self) -> float:
        now = time.monotonic()
        with self._lock:
            waits = [self._poll_interval_s]
            if self._processor.records and self.settings.processor is not None:
                waits.append(self._processor.wait_s(now, self.settings.processor.buffer_interval_s))
            destination = self._destinations.wait_s(now, self.settings.buffer_interval_s)
            if destination is not None:
                waits.append(destination)
        return max(0.005, min(waits))

    # --- the transform --------------------------------------------------------------------------

    def _settle(self, batch: list[SourceRecord]) -> None:
        outcomes, failure, attempts = self._transform(batch)
        failed: list[_Failed] = []
        if failure is not None:
            failed = [_Failed(r, (failure.code, failure.message), attempts) for r in batch]
        now = time.monotonic()
        dropped: list[RecordRef] = []
        with self._lock:
            stats = self._stats
            stats.batch_failed_records += len(failed)
            for outcome in outcomes:
                record = outcome.record
                if outcome.kind == "ok":
                    key = tuple((name, outcome.partition_keys[name]) for name in self._key_names)
                    self._destinations.add(key, outcome.data, record.arrival_ms, now, _ref(record))
                    stats.ok += 1
                elif outcome.kind == "dropped":
                    dropped.append(_ref(record))
                    stats.dropped += 1
                else:
                    assert outcome.error is not None
                    failed.append(_Failed(outcome.record, outcome.error, attempts))
                    stats.processing_failed += 1
            # Ok records now sit in the destination buffers; dropped ones are done.
            self._in_flight -= len(batch) - len(failed)
        self._finish(dropped)
        if failed:
            self._write_errors(failed)

    @property
    def _key_names(self) -> tuple[str, ...]:
        return self._prefixes.data.partition_key_names

    def _transform(
        self, batch: list[SourceRecord]
    ) -> tuple[list[RecordOutcome], BatchFailure | None, int]:
        """(outcomes, None, attempts) or ([], the last failure, attempts)."""
        if self.settings.processor is None or self._handler is None:
            return [RecordOutcome(r, "ok", r.data) for r in batch], None, 0
        attempts = self.settings.processor.number_of_retries + 1
        failure = BatchFailure(*FUNCTION_ERROR)
        for attempt in range(1, attempts + 1):
            result = self._invoke(batch)
            if not isinstance(result, BatchFailure):
                return result, None, attempt
            failure = result
            with self._lock:
                self._stats.invocation_failures += 1
            log.warning(
                "transform attempt %d/%d of %d records failed: %s",
                attempt,
                attempts,
                len(batch),
                failure.code,
            )
            if attempt < attempts:
                time.sleep(self._retry_delay_s)
        return [], failure, attempts

    def _invoke(self, batch: list[SourceRecord]) -> list[RecordOutcome] | BatchFailure:
        assert self._handler is not None
        context = LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=self.lambda_arn,
            timeout_s=self._function_timeout_s,
            memory_limit_in_mb=self._memory_limit_in_mb,
        )
        event = transformation_event(batch, self._source, str(uuid.uuid4()))
        with self._lock:
            self._stats.invocations += 1
            self._stats.records_invoked += len(batch)
        try:
            # Lambda serialises the response; what cannot be serialised is a function error.
            text = json.dumps(self._handler(event, context), separators=(",", ":"))
        except Exception:
            log.exception("%s failed on %d records", self.function_name, len(batch))
            return BatchFailure(*FUNCTION_ERROR)
        if context.overran:
            return BatchFailure(*FUNCTION_TIMED_OUT)
        if len(text.encode()) > FIREHOSE_TRANSFORM_MAX_PAYLOAD_BYTES:
            return response_too_large(len(text.encode()))
        return read_transformation_response(json.loads(text), batch, partition_keys=self._key_names)

    # --- S3 -------------------------------------------------------------------------------------

    def _write_data(self, key: PartitionKey, buffer: ObjectBuffer) -> None:
        assert buffer.oldest_arrival_ms is not None
        context = Context(moment=self._moment(buffer.oldest_arrival_ms), partition_keys=dict(key))
        body = b"".join(buffer.chunks)
        stored = self._put(self._prefixes.data, context, body)
        with self._lock:
            if stored is None:  # S3 refused: keep the data, try again after a pause
                self._destinations.put_back(key, buffer)
            else:
                self._stats.objects_written += 1
                self._stats.records_delivered += buffer.records
                self._stats.bytes_written += stored
            self._in_flight -= buffer.records
        if stored is None:
            time.sleep(self._retry_delay_s)
        else:
            self._finish(buffer.sources)

    def _write_errors(self, failed: Sequence[_Failed]) -> None:
        ending_ms = time.time_ns() // 1_000_000
        lines = [
            json.dumps(
                error_envelope(
                    item.record,
                    attempts_made=item.attempts,
                    error=item.error,
                    attempt_ending_ms=ending_ms,
                    lambda_arn=self.lambda_arn,
                ),
                separators=(",", ":"),
            ).encode()
            + b"\n"
            for item in failed
        ]
        oldest = min(item.record.arrival_ms for item in failed)
        context = Context(self._moment(oldest), {}, error_output_type=PROCESSING_FAILED)
        while self._put(self._prefixes.error, context, b"".join(lines)) is None:
            # Failed records exist only here now: keep trying; stop() bounds it by its timeout.
            if self._past_deadline():
                log.error("gave up writing %d failed records to S3", len(failed))
                break
            time.sleep(self._retry_delay_s)
        else:
            with self._lock:
                self._stats.error_objects_written += 1
                self._stats.error_records += len(failed)
            self._finish([_ref(item.record) for item in failed])
        with self._lock:
            self._in_flight -= len(failed)

    def _finish(self, refs: Sequence[RecordRef]) -> None:
        """Records now durable in S3 (or dropped): checkpoint each shard's done prefix."""
        if not refs:
            return
        by_shard: dict[str, list[str]] = {}
        for shard_id, sequence_number in refs:
            by_shard.setdefault(shard_id, []).append(sequence_number)
        moved: list[tuple[FirehoseShard, str]] = []
        with self._lock:
            for shard_id, sequence_numbers in by_shard.items():
                shard = self._shards.get(shard_id)
                checkpoint = shard.finish(sequence_numbers) if shard else None
                if shard is not None and checkpoint is not None:
                    moved.append((shard, checkpoint))
        # One conditional write per shard per object, outside the lock: never one per record.
        for shard, checkpoint in moved:
            self._readers.checkpoint(shard, checkpoint)

    def _stop_expired(self) -> bool:
        """Stopping, and no poller can add records any more: time to deliver everything."""
        return self._stop.is_set() and not any(t.is_alive() for t in self._readers.threads)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _put(self, prefix: PrefixTemplate, context: Context, body: bytes) -> int | None:
        """Write one object; its stored size, or None if S3 refused (logged, counted)."""
        if self.settings.compression_format == "GZIP":
            body = gzip.compress(body)
        now = datetime.now(self._zone)
        key = prefix.evaluate(context) + object_name(
            self.settings.delivery_stream_name,
            _DELIVERY_STREAM_VERSION,
            now,
            self.settings.extension,
        )
        try:
            self._s3.put_object(Bucket=self.settings.bucket_name, Key=key, Body=body)
        except Exception:
            log.exception("writing s3://%s/%s failed", self.settings.bucket_name, key)
            with self._lock:
                self._stats.put_failures += 1
            return None
        return len(body)

    def _moment(self, epoch_ms: int) -> datetime:
        return datetime.fromtimestamp(epoch_ms / 1000, self._zone)


def _ref(record: SourceRecord) -> RecordRef:
    return (record.shard_id, record.sequence_number)


def _account(stream_arn: str) -> str:
    parts = stream_arn.split(":", 5)
    if len(parts) != 6 or not parts[4]:
        raise FirehoseEmulationError(f"{stream_arn!r} is not a Kinesis stream ARN")
    return parts[4]
