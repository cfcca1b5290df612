"""The producer's lifecycle: startup, main loop, bounded shutdown. Usable in-process via ``run``.

- startup: build the source (``SOURCE``) and a Kinesis publisher over an aiobotocore client;
- main loop: pump frames from the source into the publisher (``put`` blocks while the buffer is
  full, which is the backpressure on the source) until the source ends (MAX_TRADES reached, replay
  file done), ``stop`` is set (SIGTERM/SIGINT in ``python -m producer``), or something fails;
- shutdown: stop the source (Finnhub unsubscribes), then flush the buffer; the whole shutdown
  takes at most SHUTDOWN_DEADLINE_SECONDS, after which unpublished trades are counted as
  ``failed`` and logged with their records (see ``producer.publisher``).

With METRICS_PORT set, Prometheus metrics (``producer.metrics``) are served on
METRICS_HOST:METRICS_PORT from startup until the end of the shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from producer.metrics import ProducerMetrics
from producer.publisher import KinesisPublisher, PublisherStats, PutRecordsObserver
from producer.settings import ProducerSettings
from producer.sources import FrameSource, build_source
from producer.sources.base import SourceStats
from tradestream import aws
from tradestream.aggregation import ShardRouter
from tradestream.logs import get_logger
from tradestream.metrics_http import MetricsServer
from tradestream.retry import Backoff, RetryBudget

logger = get_logger("producer")

PROGRESS_INTERVAL_SECONDS = 0.25
StoppedBy = Literal["running", "source_end", "stop", "error"]


@dataclass(frozen=True)
class ProducerStats:
    source: str
    frames: int  # frames the source emitted
    trades: int  # trades the source emitted, duplicates included
    distinct: int  # distinct trade ids the source emitted
    invalid: int  # source input refused by validation (counted and logged)
    received: int  # trades accepted by the publisher
    published: int  # trades Kinesis acknowledged, duplicates included
    retried: int  # trades resent
    dropped_by_policy: int
    failed: int  # trades not published: budget exhausted or shutdown deadline; logged
    put_calls: int
    call_errors: int
    buffered: int
    buffered_peak: int
    # Kinesis records (PutRecords entries): aggregates and plain records.
    kinesis_records_put: int
    aggregates_put: int
    kinesis_records_retried: int
    trades_per_kinesis_record: float  # published / kinesis_records_put; 1.0 without aggregation
    elapsed_s: float
    stopped_by: StoppedBy

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ProducerError(Exception):
    """The producer stopped on an error it cannot recover from; ``stats`` are the final counts."""

    def __init__(self, message: str, code: str, stats: ProducerStats) -> None:
        super().__init__(message)
        self.code = code
        self.stats = stats


async def run(
    settings: ProducerSettings,
    *,
    source: FrameSource | None = None,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[ProducerStats], None] | None = None,
    kinesis: Any | None = None,
) -> ProducerStats:
    """Run the producer until the source ends or ``stop`` is set; return the final counts.

    ``source`` defaults to the one SOURCE names; ``kinesis`` (an aiobotocore-like client) to one
    built by ``tradestream.aws``. ``on_progress`` is called with a snapshot about every 0.25 s and
    once at the end. Raises ``ProducerError`` (with ``stats``) on an unrecoverable error, after
    the same bounded shutdown.
    """
    source = source if source is not None else build_source(settings)
    stop = stop if stop is not None else asyncio.Event()
    logger.info("producer starting", extra={"settings": _loggable(settings)})
    async with contextlib.AsyncExitStack() as stack:
        if kinesis is None:
            kinesis = await stack.enter_async_context(
                aws.aio_client("kinesis", config=aws.NO_SDK_RETRIES)
            )
        metrics = ProducerMetrics(settings.buffer_max_records) if settings.metrics_port else None
        publisher = _publisher(settings, kinesis, metrics.put_records_done if metrics else None)
        lifecycle = _Lifecycle(settings, source, publisher, stop, on_progress)
        if metrics is not None:
            metrics.watch(source, publisher)
            stack.callback(_serve_metrics(settings, metrics, lifecycle).stop)
        stats, error = await lifecycle.run()
    logger.info("producer stopped", extra={"stats": stats.to_json()})
    if error is not None:
        code = str(getattr(error, "code", type(error).__name__))
        raise ProducerError(str(error), code, stats) from error
    return stats


def _serve_metrics(
    settings: ProducerSettings, metrics: ProducerMetrics, lifecycle: _Lifecycle
) -> MetricsServer:
    assert settings.metrics_port
    try:
        server = metrics.serve(settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        lifecycle.stopped_by = "error"
        raise ProducerError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} ({exc}): "
            "set METRICS_PORT to a free port, or unset it",
            "MetricsPortUnavailable",
            lifecycle.snapshot(),
        ) from exc
    logger.info("serving metrics", extra={"url": server.url})
    return server


def _publisher(
    settings: ProducerSettings, kinesis: Any, on_put_records: PutRecordsObserver | None = None
) -> KinesisPublisher:
    return KinesisPublisher(
        kinesis,
        settings.stream_name,
        batch_max_records=settings.batch_max_records,
        batch_max_bytes=settings.batch_max_bytes,
        linger_ms=settings.linger_ms,
        buffer_max_records=settings.buffer_max_records,
        retry=RetryBudget(
            settings.max_put_attempts,
            Backoff(settings.put_backoff_base_seconds, settings.put_backoff_max_seconds),
        ),
        on_put_records=on_put_records,
        aggregation_max_bytes=settings.aggregation_max_bytes if settings.aggregation else None,
        shards=ShardRouter(kinesis, settings.stream_name) if settings.aggregation else None,
    )


def _loggable(settings: ProducerSettings) -> dict[str, Any]:
    shown = settings.model_dump(mode="json", exclude={"finnhub_api_key"})
    shown["finnhub_api_key"] = "set" if settings.finnhub_api_key else "unset"
    return shown


class _Lifecycle:
    def __init__(
        self,
        settings: ProducerSettings,
        source: FrameSource,
        publisher: KinesisPublisher,
        stop: asyncio.Event,
        on_progress: Callable[[ProducerStats], None] | None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.publisher = publisher
        self.stop = stop
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.stopped_by: StoppedBy = "running"

    def snapshot(self) -> ProducerStats:
        # The source's and the publisher's counters, under their own names (a source's stats may
        # carry more, e.g. Finnhub's reconnects: only the common ones are the producer's).
        counts: dict[str, Any] = {
            f.name: getattr(stats, f.name)
            for stats, kind in (
                (self.source.stats, SourceStats),
                (self.publisher.stats, PublisherStats),
            )
            for f in fields(kind)
        }
        records = counts["kinesis_records_put"]
        return ProducerStats(
            source=type(self.source).__name__,
            **counts,
            trades_per_kinesis_record=round(counts["published"] / records, 2) if records else 0.0,
            elapsed_s=round(time.monotonic() - self.started, 3),
            stopped_by=self.stopped_by,
        )

    async def run(self) -> tuple[ProducerStats, BaseException | None]:
        self.publisher.start()
        sender = self.publisher.task
        assert sender is not None
        pump = asyncio.create_task(self._pump(), name="producer-pump")
        stopped = asyncio.create_task(self.stop.wait(), name="producer-stop")
        progress = asyncio.create_task(self._progress(), name="producer-progress")
        try:
            await asyncio.wait({pump, stopped, sender}, return_when=asyncio.FIRST_COMPLETED)
            self.stopped_by = self._why(pump, stopped)
            logger.info("producer shutting down", extra={"reason": self.stopped_by})
            await self._shutdown(pump)
        finally:
            # Also reached when run() itself is cancelled: nothing may outlive it.
            for task in (pump, stopped, progress):
                task.cancel()
            await asyncio.wait({pump, stopped, progress})
            if not sender.done():
                await self.publisher.close(deadline_seconds=0)
        error = self.publisher.error or _task_error(pump)
        if error is not None:
            self.stopped_by = "error"
        stats = self.snapshot()
        if self.on_progress is not None:
            self.on_progress(stats)
        return stats, error

    def _why(self, pump: asyncio.Task[None], stopped: asyncio.Task[bool]) -> StoppedBy:
        if self.publisher.error is not None or _task_error(pump) is not None:
            return "error"
        if stopped.done():
            return "stop"
        return "source_end"

    async def _shutdown(self, pump: asyncio.Task[None]) -> None:
        began = time.monotonic()
        deadline = began + self.settings.shutdown_deadline_seconds
        pump.cancel()
        await asyncio.wait({pump}, timeout=self.settings.shutdown_deadline_seconds)
        await self.publisher.close(deadline_seconds=deadline - time.monotonic())
        logger.info("producer flushed", extra={"seconds": round(time.monotonic() - began, 3)})

    async def _pump(self) -> None:
        frames = aiter(self.source)
        try:
            async for frame in frames:
                for trade in frame:
                    await self.publisher.put(trade)
        finally:
            # Closing the iterator lets a source say goodbye (Finnhub unsubscribes).
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _progress(self) -> None:
        if self.on_progress is None:
            return
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)
            self.on_progress(self.snapshot())


def _task_error(task: asyncio.Task[None]) -> BaseException | None:
    if not task.done() or task.cancelled():
        return None
    return task.exception()
