"""Emulation of a Lambda event source mapping on a Kinesis data stream, invoking a Python handler
in this process.

Emulated, driven by ``MappingSettings`` (read from the template by ``tradestream.cfn.template``):

- one poller thread per shard (GetShardIterator / GetRecords through boto3), polling again at once
  while a shard has a backlog and every ``poll_interval_s`` when it is at its tip;
- StartingPosition TRIM_HORIZON, LATEST (the tip when ``start()`` returns) and AT_TIMESTAMP;
- BatchSize, MaximumBatchingWindowInSeconds, and the 6 MB synchronous payload limit, which caps a
  batch before BatchSize does when records are large;
- AWS's exact Kinesis event and a Lambda-like context (``lambda_context.LambdaContext``); the
  response goes through JSON, as Lambda's would;
- ReportBatchItemFailures: checkpoint before the lowest reported sequence number and redeliver
  from it; null/empty responses succeed; malformed ones fail the whole batch;
- function errors (exceptions, non-JSON responses, runs past the function timeout) fail the whole
  batch; BisectBatchOnFunctionError splits it in halves, which does not count as a retry;
- MaximumRetryAttempts and MaximumRecordAgeInSeconds, after which the batch metadata (never the
  data) goes to the OnFailure SQS destination in AWS's shape, and the shard moves past the batch;
- shards created after ``start()`` are found by a periodic ListShards and read from TRIM_HORIZON;
- checkpoints after the function's answer (before the lowest failed record with
  ReportBatchItemFailures, past a discarded batch once its on-failure record is sent), durable
  in the lease table when ``leases`` is a ``DynamoDBLeases``: a restarted mapping resumes after
  its checkpoints, and a lease per shard keeps two runtimes from both invoking for one shard
  (``tradestream.local.leases``);
- IteratorAge per shard, as ``lag_ms()`` (``kinesis_consumer``): the age of the last record read,
  0 once the shard is at its tip with nothing buffered, retried or in flight; it grows while a
  batch is retried, as on AWS. The counters are ``stats`` (``runtime_*`` metrics in
  ``tradestream.local.metrics``).

Not emulated:

- ParallelizationFactor > 1 (batches of a shard run one at a time; a warning says so);
- tumbling windows, filter criteria and OnSuccess destinations (the template reader refuses
  them), SNS/S3/Kafka on-failure destinations (refused here), enhanced fan-out consumers;
- resharding beyond the initial shards: a child shard is read as soon as it is found, without
  waiting for its parents to drain, so per-key order across a reshard is not kept;
- throttling of the function or of GetRecords (5 calls/s per shard), the function's concurrency,
  CloudWatch itself (the metrics are Prometheus'), the event source mapping API
  (Create/Update/Delete, Enabled toggling at run time) and its states;
- a retried batch holds the same records (or the failed suffix); AWS may re-read the shard and
  top the batch up to BatchSize. Retries wait ``retry_delay_s`` (default: the poll interval).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tradestream import aws
from tradestream.cfn.template import NotEmulatedError
from tradestream.kpl import count_user_records
from tradestream.local.esm.events import (
    FailureCondition,
    KinesisEventSource,
    Outcome,
    from_get_records,
    function_error,
    kinesis_event,
    on_failure_record,
    read_batch_response,
)
from tradestream.local.esm.settings import MappingSettings
from tradestream.local.esm.state import (
    Batch,
    MappingShard,
    MappingStats,
    Settlement,
    settle,
    split_expired,
)
from tradestream.local.kinesis_consumer import (
    KinesisConsumer,
    log_poll_failure,
)
from tradestream.local.lambda_runtime import LambdaContext, function_arn
from tradestream.local.leases import Leases

Handler = Callable[[dict[str, Any], Any], Any]

log = logging.getLogger(__name__)

# GetRecords returns at most 10,000 records per call.
_GET_RECORDS_LIMIT = 10_000


class EventSourceMappingError(RuntimeError):
    code = "InvalidParameterValueException"


class KinesisEventSourceMapping(KinesisConsumer[MappingShard]):
    """Feeds one Kinesis stream to one handler, as a Lambda event source mapping would.

    ``start()`` reads the shard list and opens every shard's iterator before it returns, so
    with LATEST every record put afterwards is delivered. Use ``wait_caught_up`` to wait until
    everything put so far has been handled, and ``stop`` (or the context manager) to end.
    """

    def __init__(
        self,
        *,
        stream_arn: str,
        function_name: str,
        handler: Handler,
        settings: MappingSettings,
        region: str,
        kinesis: Any = None,
        sqs: Any = None,
        poll_interval_s: float = 0.2,
        retry_delay_s: float | None = None,
        function_timeout_s: float = 60.0,
        memory_limit_in_mb: int = 256,
        invoke_identity_arn: str | None = None,
        shard_refresh_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        leases: Leases | None = None,
    ) -> None:
        account_id = _arn_part(stream_arn, 4, "stream")
        destination = settings.on_failure_destination_arn
        if destination is not None and not destination.startswith("arn:aws:sqs:"):
            raise NotEmulatedError(f"only SQS on-failure destinations are emulated: {destination}")
        if settings.parallelization_factor > 1:
            log.warning("ParallelizationFactor > 1 is not emulated: one batch per shard at a time")
        self.stream_arn = stream_arn
        self.function_name = function_name
        self.function_arn = function_arn(region, account_id, function_name)
        self.settings = settings
        self._handler = handler
        self._kinesis = kinesis if kinesis is not None else aws.client("kinesis")
        self._sqs = sqs
        self._poll_interval_s = poll_interval_s
        self._retry_delay_s = poll_interval_s if retry_delay_s is None else retry_delay_s
        self._function_timeout_s = function_timeout_s
        self._memory_limit_in_mb = memory_limit_in_mb
        self._clock = clock
        self._source = KinesisEventSource(
            stream_arn=stream_arn,
            region=region,
            invoke_identity_arn=invoke_identity_arn
            or f"arn:aws:iam::{account_id}:role/{function_name}",
        )
        self._destination_url: str | None = None
        super().__init__(
            kinesis=self._kinesis,
            stream_arn=stream_arn,
            new_shard=MappingShard,
            name="esm",
            refresh_s=shard_refresh_s,
            leases=leases,
        )
        self._stats = MappingStats()
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            raise EventSourceMappingError("a mapping starts once; create a new one to restart")
        self._started = True
        if not self.settings.enabled:
            log.info("event source mapping for %s is disabled; not polling", self.function_name)
            return
        self._destination_url = self._resolve_destination()
        self._readers.start(self._initial_iterator_args())

    def stop(self, timeout: float = 10) -> bool:
        """Stop polling; an invocation in progress finishes first. True if every thread ended."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        ended = not self._readers.still_running(list(self._readers.threads), deadline)
        self._readers.release()
        return ended

    # --- observation ----------------------------------------------------------------------------

    @property
    def stats(self) -> MappingStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._stats.snapshot()

    def checkpoints(self) -> dict[str, str | None]:
        with self._lock:
            return {shard_id: shard.checkpoint for shard_id, shard in self._shards.items()}

    def caught_up(self, *, since: float | None = None) -> bool:
        """Every shard polled to its tip with nothing buffered, retried or in flight.

        ``since`` (a ``time.monotonic()`` value) also requires that tip poll to have started at
        or after it, so records put before ``since`` are known to be handled.
        """
        with self._lock:
            if not self._shards:
                return False
            floor = float("-inf") if since is None else since
            return all(shard.idle_since(floor) for shard in self._shards.values())

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait until everything put to the stream before this call has been handled."""
        since = time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            if self.caught_up(since=since):
                return True
            time.sleep(min(0.02, self._poll_interval_s))
        return self.caught_up(since=since)

    # --- shards -----------------------------------------------------------------------------------

    def _initial_iterator_args(self) -> dict[str, Any]:
        position = self.settings.starting_position
        args: dict[str, Any] = {"ShardIteratorType": position}
        if position == "AT_TIMESTAMP" and self.settings.starting_position_timestamp is not None:
            args["Timestamp"] = datetime.fromtimestamp(
                self.settings.starting_position_timestamp, UTC
            )
        return args

    # --- one shard's loop -------------------------------------------------------------------------

    def _poll_shard(self, shard: MappingShard) -> None:
        while not self._stop.is_set() and not shard.lost:
            try:
                wait = self._step(shard)
            except Exception as exc:
                if self._readers.stream_deleted(exc):
                    return
                # Network trouble or an expired iterator: renew it after the last fetched record,
                # and try the batch that was being handled again (at-least-once, never lost).
                log_poll_failure(shard.shard_id, exc)
                shard.iterator = None
                with self._lock:
                    shard.requeue_in_flight()
                wait = self._poll_interval_s
            if shard.lost or (shard.closed and shard.idle_since(float("-inf"))):
                return
            if wait > 0:
                self._stop.wait(wait)

    def _step(self, shard: MappingShard) -> float:
        """Poll and/or invoke once; return how long to wait before the next step."""
        fetched = 0
        behind = 0
        if shard.wants_records(self.settings):
            fetched, behind = self._fetch(shard)
        with self._lock:
            batch = shard.take_batch(time.monotonic(), self.settings)
        if batch is not None:
            return self._process(shard, batch)
        if fetched or behind:
            return 0.0  # a backlog: poll again at once
        with self._lock:
            window = shard.window_remaining(time.monotonic(), self.settings) if shard.buffer else 0
        return min(self._poll_interval_s, window) if window > 0 else self._poll_interval_s

    def _fetch(self, shard: MappingShard) -> tuple[int, int]:

        fetched = self._readers.fetch(
            shard,
            limit=min(_GET_RECORDS_LIMIT, self.settings.batch_size - len(shard.buffer)),
            convert=lambda raw: from_get_records(shard.shard_id, raw, self._source),
            then=lambda records: shard.add_fetched(records, now=time.monotonic()),
        )
        return len(fetched.records), fetched.millis_behind

    def _process(self, shard: MappingShard, batch: Batch) -> float:
        old, live = split_expired(batch, self._clock(), self.settings.maximum_record_age_s)
        if old is not None:
            if not self._discard(old, "RecordAgeExceeded"):
                return 0.0  # stopping before the on-failure record was sent: keep the position
            with self._lock:
                moved = shard.finish(Settlement(discard=old, next_batches=(live,) if live else ()))
            self._checkpoint(shard, moved)
            return 0.0  # the live rest is now first in line
        assert live is not None
        outcome = self._invoke(live)
        tried = replace(
            live,
            invocations=live.invocations + 1,
            last_response=dict(outcome.response_context),
        )
        settlement = settle(tried, outcome, self.settings)
        if settlement.discard is not None and not self._discard(
            settlement.discard, "RetryAttemptsExhausted"
        ):
            return 0.0
        with self._lock:
            moved = shard.finish(settlement)
            self._count(outcome, settlement)
        self._checkpoint(shard, moved)
        return self._retry_delay_s if settlement.retry_delay else 0.0

    def _checkpoint(self, shard: MappingShard, moved: str | None) -> None:
        # One conditional write per batch, after the answer: at-least-once, never ahead of it.
        if moved is not None:
            self._readers.checkpoint(shard, moved)

    def _count(self, outcome: Outcome, settlement: Settlement) -> None:
        stats = self._stats
        stats.records_succeeded += len(settlement.succeeded)
        stats.batch_item_failures += outcome.reported_failures
        stats.function_errors += outcome.kind == "function_error"
        stats.invalid_responses += outcome.kind == "invalid_response"
        stats.bisections += settlement.bisected

    # --- the function -----------------------------------------------------------------------------

    def _invoke(self, batch: Batch) -> Outcome:
        context = LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=self.function_arn,
            timeout_s=self._function_timeout_s,
            memory_limit_in_mb=self._memory_limit_in_mb,
        )
        event = kinesis_event(batch.records, self._source)
        with self._lock:
            self._stats.invocations += 1
            self._stats.records_delivered += len(batch)
            self._stats.user_records_delivered += sum(
                count_user_records(r.data) for r in batch.records
            )
        try:
            # Lambda serialises the response; what cannot be serialised is a function error.
            response = json.loads(json.dumps(self._handler(event, context)))
        except Exception:
            log.exception(
                "%s failed on %d records (request %s)",
                self.function_name,
                len(batch),
                context.aws_request_id,
            )
            return function_error()
        if context.overran:
            log.error("%s ran past its %ss timeout", self.function_name, self._function_timeout_s)
            return function_error()
        return read_batch_response(
            response,
            batch.records,
            report_batch_item_failures=self.settings.report_batch_item_failures,
        )

    # --- the on-failure destination ---------------------------------------------------------------

    def _resolve_destination(self) -> str | None:
        arn = self.settings.on_failure_destination_arn
        if arn is None:
            return None
        if self._sqs is None:
            self._sqs = aws.client("sqs")
        queue_name = _arn_part(arn, 5, "queue")
        owner = _arn_part(arn, 4, "queue")
        url: str = self._sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=owner)[
            "QueueUrl"
        ]
        return url

    def _discard(self, batch: Batch, condition: FailureCondition) -> bool:
        """Send the batch's metadata to the destination. False only if stopped before it was."""
        if self._destination_url is None:
            log.warning(
                "discarding %d records of %s (%s) with no on-failure destination",
                len(batch),
                batch.records[0].shard_id,
                condition,
            )
        else:
            body = json.dumps(
                on_failure_record(
                    records=batch.records,
                    condition=condition,
                    invoke_count=batch.invocations,
                    last_response=batch.last_response,
                    request_id=str(uuid.uuid4()),
                    function_arn=self.function_arn,
                    stream_arn=self.stream_arn,
                    now=self._clock(),
                )
            )
            if not self._send_until_stopped(body):
                return False
        with self._lock:
            self._stats.on_failure_sent += self._destination_url is not None
            self._stats.records_discarded += len(batch)
        return True

    def _send_until_stopped(self, body: str) -> bool:
        # Checkpointing past records whose metadata was not kept would lose them silently.
        while True:
            try:
                self._sqs.send_message(QueueUrl=self._destination_url, MessageBody=body)
                return True
            except Exception:
                log.exception("sending an on-failure record failed; retrying")
                if self._stop.wait(self._retry_delay_s or self._poll_interval_s):
                    return False


def _arn_part(arn: str, index: int, what: str) -> str:
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[index]:
        raise EventSourceMappingError(f"{arn!r} is not a {what} ARN")
    return parts[index]
