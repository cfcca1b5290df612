"""Prometheus metrics of one app instance, in a registry of its own (tests build many apps).

With several worker processes (WORKERS > 1) a scrape reaches one of them, so ``serve`` sets
PROMETHEUS_MULTIPROC_DIR: every worker then writes its values to files there and /metrics
answers with the sum over all workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 200, 300, 400, 500)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ingest_http_requests",
            "HTTP requests answered, by route, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ingest_http_request_duration_seconds",
            "Time from request start to the end of the response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.trades_received = Counter(
            "ingest_trades_received", "Valid trades handed to the Kinesis batcher.", registry=r
        )
        self.trades_accepted = Counter(
            "ingest_trades_accepted",
            "Trades Kinesis accepted (acknowledged to clients).",
            registry=r,
        )
        self.trades_failed = Counter(
            "ingest_trades_failed",
            "Trades given up on after the retry budget (clients got 503).",
            registry=r,
        )
        self.trades_rejected = Counter(
            "ingest_requests_rejected",
            "Requests refused before reaching Kinesis, by error code.",
            ["code"],
            registry=r,
        )
        self.put_calls = Counter(
            "ingest_kinesis_put_records_calls",
            "PutRecords calls, by outcome: ok, partial (some entries failed) or error.",
            ["outcome"],
            registry=r,
        )
        self.put_retries = Counter(
            "ingest_kinesis_entries_retried",
            "PutRecords entries (Kinesis records) sent again.",
            registry=r,
        )
        self.trades_retried = Counter(
            "ingest_trades_retried",
            "Trades sent again, in a Kinesis record resent (one per entry without aggregation).",
            registry=r,
        )
        # Trades and Kinesis records apart: with AGGREGATION=true one record carries many trades.
        self.kinesis_records_put = Counter(
            "ingest_kinesis_records_put",
            "Kinesis records accepted: aggregates and plain records.",
            registry=r,
        )
        self.aggregates_put = Counter(
            "ingest_kinesis_aggregates_put",
            "KPL aggregated records accepted (each carries two trades or more).",
            registry=r,
        )
        self.batch_size = Histogram(
            "ingest_kinesis_batch_records",
            "Kinesis records per PutRecords call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.put_latency = Histogram(
            "ingest_kinesis_put_records_duration_seconds",
            "Duration of PutRecords calls.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.buffered = Gauge(
            "ingest_buffered_records",
            "Trades queued for or in flight to Kinesis.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def render(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)

    def process_exited(self) -> None:
        """Drop this worker's live gauges from the shared files (counters keep their totals)."""
        if os.environ.get(MULTIPROC_ENV):
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
