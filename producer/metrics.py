"""The producer's Prometheus metrics, in a registry of their own (tests run many producers).

The counts are the producer's own counters (``SourceStats``, ``PublisherStats``: the figures the
final JSON line and ``on_progress`` report), read when Prometheus scrapes, so the two can never
disagree and producing costs nothing extra. Only what the counters cannot say is recorded as it
happens, once per PutRecords call: the calls by outcome and their duration.

- ``producer_trades_produced_total``: distinct trades from the source (``distinct``);
- ``producer_source_trades_total``: trades from the source, duplicates included (``trades``);
- ``producer_source_invalid_total``: source input refused by validation (``invalid``);
- ``producer_records_published_total``: trades Kinesis accepted, re-sends included (``published``);
- ``producer_kinesis_records_put_total``: Kinesis records accepted, aggregates and plain records
  (``kinesis_records_put``); ``producer_aggregates_put_total``: of those, KPL aggregates
  (``aggregates_put``); trades per Kinesis record is the ratio of the two ``*_put`` rates, and
  ``producer_trades_per_kinesis_record`` that ratio since start;
- ``producer_kinesis_records_retried_total``: Kinesis records sent again
  (``kinesis_records_retried``);
- ``producer_put_records_calls_total{outcome}``: ``ok``, ``partial`` (some entries refused) or
  ``error`` (the call failed as a whole); ``producer_put_records_duration_seconds``: their time;
- ``producer_entries_retried_total``: trades sent again (``retried``; in Kinesis records above);
- ``producer_trades_failed_total``: trades given up on, logged with their records (``failed``);
- ``producer_trades_dropped_by_policy_total``: records above Kinesis' 1 MiB (``dropped_by_policy``);
- ``producer_buffer_trades`` / ``producer_buffer_capacity_trades``: the backpressure buffer's fill
  (``buffered``) and its size (BUFFER_MAX_RECORDS);
- ``producer_source_connected``: 1 while the Finnhub WebSocket is open; a source with no
  connection (synthetic, replay) is always 1;
- ``producer_source_reconnects_total``: Finnhub reconnection attempts (Finnhub only).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from producer.publisher import KinesisPublisher
from producer.sources import FrameSource
from tradestream.metrics_http import MetricsServer, serve_metrics

OUTCOMES = ("ok", "partial", "error")
PUT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ProducerMetrics:
    """Metrics over one producer's source and publisher; ``watch`` them once both exist."""

    def __init__(self, buffer_capacity: int) -> None:
        self.registry = CollectorRegistry()
        self.put_calls = Counter(
            "producer_put_records_calls",
            "PutRecords calls, by outcome: ok, partial (some entries refused) or error.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.put_calls.labels(outcome)  # present at 0 before the first call of each
        self.put_duration = Histogram(
            "producer_put_records_duration_seconds",
            "Duration of PutRecords calls.",
            buckets=PUT_BUCKETS,
            registry=self.registry,
        )
        self._counts = _Counts(buffer_capacity)
        self.registry.register(self._counts)

    def watch(self, source: FrameSource, publisher: KinesisPublisher) -> None:
        self._counts.source = source
        self._counts.publisher = publisher

    def put_records_done(self, outcome: str, seconds: float) -> None:
        """The publisher's ``on_put_records``."""
        self.put_calls.labels(outcome).inc()
        self.put_duration.observe(seconds)

    def serve(self, host: str, port: int) -> MetricsServer:
        return serve_metrics(self.registry, host, port)


class _Counts:
    """The source's and the publisher's counters, as they are at scrape time."""

    def __init__(self, buffer_capacity: int) -> None:
        self.buffer_capacity = buffer_capacity
        self.source: FrameSource | None = None
        self.publisher: KinesisPublisher | None = None

    def collect(self) -> Iterator[Metric]:
        source, publisher = self.source, self.publisher
        if source is not None:
            stats = source.stats
            yield _counter("trades_produced", "Distinct trades from the source.", stats.distinct)
            yield _counter(
                "source_trades", "Trades from the source, duplicates included.", stats.trades
            )
            yield _counter(
                "source_invalid", "Source input refused by validation (logged).", stats.invalid
            )
            reconnects = getattr(stats, "reconnects", None)
            if reconnects is not None:
                yield _counter("source_reconnects", "Reconnection attempts.", reconnects)
            connected = bool(getattr(source, "connected", True))
            yield _gauge(
                "source_connected",
                "1 while the source's connection (Finnhub's WebSocket) is open.",
                int(connected),
            )
        if publisher is not None:
            sent = publisher.stats
            yield _counter(
                "records_published",
                "Trades Kinesis accepted, re-sent duplicates included.",
                sent.published,
            )
            yield _counter(
                "entries_retried", "Trades sent again, in a Kinesis record resent.", sent.retried
            )
            yield _counter(
                "kinesis_records_put",
                "Kinesis records accepted (aggregates and plain records), re-sends included.",
                sent.kinesis_records_put,
            )
            yield _counter(
                "aggregates_put",
                "KPL aggregated records accepted (each carries two trades or more).",
                sent.aggregates_put,
            )
            yield _counter(
                "kinesis_records_retried",
                "Kinesis records (PutRecords entries) sent again.",
                sent.kinesis_records_retried,
            )
            if sent.kinesis_records_put:
                yield _gauge(
                    "trades_per_kinesis_record",
                    "Trades per Kinesis record accepted since start (1 without aggregation).",
                    sent.published / sent.kinesis_records_put,
                )
            yield _counter(
                "trades_failed",
                "Trades given up on (retry budget or shutdown deadline), logged with the record.",
                sent.failed,
            )
            yield _counter(
                "trades_dropped_by_policy",
                "Trades above Kinesis' 1 MiB record limit, refused and logged.",
                sent.dropped_by_policy,
            )
            yield _gauge(
                "buffer_trades",
                "Trades accepted and not yet published or failed (the backpressure buffer).",
                sent.buffered,
            )
        yield _gauge(
            "buffer_capacity_trades",
            "Trades the buffer holds before the source is slowed down (BUFFER_MAX_RECORDS).",
            self.buffer_capacity,
        )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"producer_{name}", documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"producer_{name}", documentation, value=value)
