"""Prometheus metrics of the local runtime: what its two consumer stages see, per stage and shard.

``stage="hotstore"`` is the event source mapping feeding the hotstore function; ``stage="lake"``
the Firehose emulation feeding the enrich transform and S3. Everything is read from the
emulations when Prometheus scrapes (``RuntimeCollector``): their ``stats`` snapshots and
``lag_ms()``, so the runtime pays nothing between scrapes. A stage that is not running has no
samples.

Per stage and shard (gauges):

- ``runtime_iterator_age_milliseconds{stage,shard}``: the age of the last record the stage read
  from the shard, 0 once it is caught up (``tradestream.local.kinesis_consumer``). For the
  hotstore it includes records read and not yet checkpointed (a retried batch makes it grow, as
  Lambda's IteratorAge does); for the lake it is the read side only, as Firehose's
  KinesisMillisBehindLatest;
- ``runtime_millis_behind_latest{stage,shard}``: MillisBehindLatest of the last GetRecords answer.

Per stage (counters, and ``runtime_stage_running`` 1 while its readers poll):

- ``runtime_invocations_total``: function invocations (the lake's retries included);
- ``runtime_records_delivered_total``: records handed to the stage's function, redeliveries and
  retries included;
- ``runtime_records_succeeded_total``: the hotstore's records checkpointed after a successful
  invocation; the lake's records in data objects written to S3;
- ``runtime_function_errors_total``: invocations that failed as a whole (an exception, a
  timeout, an invalid response).

The hotstore's own: ``runtime_batch_item_failures_total`` (itemIdentifiers the function
reported), ``runtime_on_failure_sent_total`` (batch metadata sent to the on-failure queue),
``runtime_hotstore_records_discarded_total``, ``runtime_hotstore_invalid_responses_total``,
``runtime_hotstore_bisections_total``, ``runtime_hotstore_user_records_delivered_total``
(records delivered counted in trades: a KPL aggregate counts its user records). The lake's own:
``runtime_lake_records_read_total`` / ``_bytes_read_total`` (Kinesis records from the stream),
``runtime_lake_user_records_read_total`` (the same in trades), ``runtime_lake_records_ok_total`` /
``_dropped_total`` / ``runtime_lake_processing_failed_total`` (the transform's answers),
``runtime_lake_batch_failed_records_total`` (records of batches failing every attempt),
``runtime_lake_error_records_total`` (envelopes written under the error prefix),
``runtime_lake_objects_written_total``, ``runtime_lake_error_objects_written_total``,
``runtime_lake_bytes_written_total`` and ``runtime_lake_put_failures_total`` (PutObject retried).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tradestream.local.esm.mapping import KinesisEventSourceMapping
from tradestream.local.esm.state import MappingStats
from tradestream.local.firehose.delivery import FirehoseEmulation
from tradestream.local.firehose.state import FirehoseStats
from tradestream.metrics_http import MetricsServer, serve_metrics

HOTSTORE, LAKE = "hotstore", "lake"


class Stages(Protocol):
    """What the metrics read: an ``EmbeddedStack``'s two consumer stages, None when not run."""

    @property
    def mapping(self) -> KinesisEventSourceMapping | None: ...

    @property
    def firehose(self) -> FirehoseEmulation | None: ...


def stage_lag(stack: Stages) -> dict[str, dict[str, int]]:
    """``{"hotstore": {shard: ms}, "lake": {shard: ms}}``: the iterator age per stage and shard,
    now (an empty dict for a stage that is not running). For in-process readers: the dashboard."""
    return {
        HOTSTORE: stack.mapping.lag_ms() if stack.mapping is not None else {},
        LAKE: stack.firehose.lag_ms() if stack.firehose is not None else {},
    }


def start_metrics(stack: Stages, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve the runtime's metrics on ``host:port`` (port 0: a free one) until ``.stop()``;
    ``.url`` is where to scrape. Raises ``OSError`` when the port is taken."""
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(stack))
    return serve_metrics(registry, host, port)


# (name, help, value) of each stage's counters, in the order they are exposed.
_Shared = tuple[str, str, Callable[[MappingStats], int], Callable[[FirehoseStats], int]]
_SHARED: tuple[_Shared, ...] = (
    (
        "invocations",
        "Function invocations, by stage (the lake's retries included).",
        lambda m: m.invocations,
        lambda f: f.invocations,
    ),
    (
        "records_delivered",
        "Records handed to the stage's function, redeliveries and retries included.",
        lambda m: m.records_delivered,
        lambda f: f.records_invoked,
    ),
    (
        "records_succeeded",
        "Records done: the hotstore's checkpointed after success, the lake's written to S3.",
        lambda m: m.records_succeeded,
        lambda f: f.records_delivered,
    ),
    (
        "function_errors",
        "Invocations that failed as a whole: an exception, a timeout, an invalid response.",
        lambda m: m.function_errors + m.invalid_responses,
        lambda f: f.invocation_failures,
    ),
)
_HOTSTORE: tuple[tuple[str, str, Callable[[MappingStats], int]], ...] = (
    (
        "batch_item_failures",
        "itemIdentifiers the hotstore function reported (ReportBatchItemFailures).",
        lambda m: m.batch_item_failures,
    ),
    (
        "on_failure_sent",
        "Batch metadata records sent to the hotstore's on-failure destination (the DLQ).",
        lambda m: m.on_failure_sent,
    ),
    (
        "hotstore_records_discarded",
        "Records skipped past after their retries or maximum age ran out.",
        lambda m: m.records_discarded,
    ),
    (
        "hotstore_invalid_responses",
        "Malformed partial batch responses (the whole batch failed).",
        lambda m: m.invalid_responses,
    ),
    ("hotstore_bisections", "Failed batches split in halves.", lambda m: m.bisections),
    (
        "hotstore_user_records_delivered",
        "User records handed to the hotstore function (each trade of a KPL aggregate counts).",
        lambda m: m.user_records_delivered,
    ),
)
_LAKE: tuple[tuple[str, str, Callable[[FirehoseStats], int]], ...] = (
    ("lake_records_read", "Kinesis records read from the source stream.", lambda f: f.records_in),
    (
        "lake_user_records_read",
        "User records read (each trade of a KPL aggregate counts).",
        lambda f: f.user_records_in,
    ),
    ("lake_bytes_read", "Bytes of records read from the source stream.", lambda f: f.bytes_in),
    ("lake_records_ok", "Records the transform answered Ok.", lambda f: f.ok),
    ("lake_records_dropped", "Records the transform answered Dropped.", lambda f: f.dropped),
    (
        "lake_processing_failed",
        "Records the transform failed one by one (ProcessingFailed): to the error prefix.",
        lambda f: f.processing_failed,
    ),
    (
        "lake_batch_failed_records",
        "Records of transform batches that failed every attempt: to the error prefix.",
        lambda f: f.batch_failed_records,
    ),
    (
        "lake_error_records",
        "Error envelopes written under the error prefix.",
        lambda f: f.error_records,
    ),
    ("lake_objects_written", "Data objects written to S3.", lambda f: f.objects_written),
    (
        "lake_error_objects_written",
        "Error objects written to S3.",
        lambda f: f.error_objects_written,
    ),
    (
        "lake_bytes_written",
        "Bytes of data objects written to S3, as stored.",
        lambda f: f.bytes_written,
    ),
    ("lake_put_failures", "PutObject attempts that failed (retried).", lambda f: f.put_failures),
)


class RuntimeCollector:
    """The stages' counters and lag, read at scrape time (register it in a CollectorRegistry)."""

    def __init__(self, stack: Stages) -> None:
        self.stack = stack

    def collect(self) -> Iterator[Metric]:
        mapping, firehose = self.stack.mapping, self.stack.firehose
        hotstore = mapping.stats if mapping is not None else None
        lake = firehose.stats if firehose is not None else None
        yield from self._per_shard(mapping, firehose)
        running = GaugeMetricFamily(
            "runtime_stage_running", "1 while the stage's shard readers poll.", labels=["stage"]
        )
        leased = GaugeMetricFamily(
            "runtime_shards_leased",
            "Shards whose lease this runtime holds (another runtime works the rest).",
            labels=["stage"],
        )
        for stage, consumer in ((HOTSTORE, mapping), (LAKE, firehose)):
            if consumer is not None:
                running.add_metric([stage], int(consumer.running))
                leased.add_metric([stage], len(consumer.lag_ms()))
        yield running
        yield leased
        for name, documentation, of_mapping, of_firehose in _SHARED:
            family = _counter(name, documentation, ["stage"])
            if hotstore is not None:
                family.add_metric([HOTSTORE], of_mapping(hotstore))
            if lake is not None:
                family.add_metric([LAKE], of_firehose(lake))
            yield family
        if hotstore is not None:
            for name, documentation, value in _HOTSTORE:
                yield _counter(name, documentation, value=value(hotstore))
        if lake is not None:
            for name, documentation, of_lake in _LAKE:
                yield _counter(name, documentation, value=of_lake(lake))

    def _per_shard(
        self, mapping: KinesisEventSourceMapping | None, firehose: FirehoseEmulation | None
    ) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "runtime_iterator_age_milliseconds",
            "Age of the last record the stage read from the shard; 0 once caught up.",
            labels=["stage", "shard"],
        )
        behind = GaugeMetricFamily(
            "runtime_millis_behind_latest",
            "MillisBehindLatest of the stage's last GetRecords answer on the shard.",
            labels=["stage", "shard"],
        )
        for stage, consumer in ((HOTSTORE, mapping), (LAKE, firehose)):
            if consumer is None:
                continue
            for shard, ms in consumer.lag_ms().items():
                age.add_metric([stage, shard], ms)
            for shard, ms in consumer.millis_behind_latest().items():
                behind.add_metric([stage, shard], ms)
        yield age
        yield behind


def _counter(
    name: str, documentation: str, labels: list[str] | None = None, value: int | None = None
) -> CounterMetricFamily:
    return CounterMetricFamily(f"runtime_{name}", documentation, value=value, labels=labels)
