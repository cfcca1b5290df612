"""`tradestream up --source ...`: run a producer beside the embedded stack, in a thread of its own
with its own event loop, stopped (and flushed) when the stack is asked to stop."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tradestream.local.runtime import EmbeddedStack, ModelServer

log = logging.getLogger(__name__)


def producer_overrides(source: str) -> dict[str, Any] | None:
    """Map the CLI's --source value onto producer settings; None means no producer."""
    if source == "none":
        return None
    if source in ("synthetic", "finnhub"):
        return {"source": source}
    if source.startswith("replay:") and len(source) > len("replay:"):
        return {"source": "replay", "replay_file": source.removeprefix("replay:")}
    raise ValueError(f"unknown source {source!r}: use synthetic, finnhub, replay:FILE or none")


def start_model_server() -> ModelServer:
    """The local SageMaker-compatible model server (ml/ is a deployable: wired in here)."""
    from ml.serve import start_in_thread

    return start_in_thread()


def run_source(
    source: str,
    stack: EmbeddedStack,
    stop: threading.Event,
    on_progress: Callable[[Any], None] | None = None,
) -> threading.Thread | None:
    overrides = producer_overrides(source)
    if overrides is None:
        return None
    from producer.app import run as run_producer  # the launcher imports the deployable
    from producer.settings import ProducerSettings

    settings = ProducerSettings(stream_name=stack.stack.stream_name, **overrides)

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)), daemon=True
        ).start()
        await run_producer(settings, stop=stopping, on_progress=on_progress)

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="producer", daemon=True)
    thread.start()
    return thread


@contextmanager
def start_ingest(stack: EmbeddedStack) -> Iterator[None]:
    """Run the ingest API beside the stack when API keys are configured (it refuses to run
    without any), and add its URL to the ready line; it is stopped, drained, on the way out."""
    if not (os.environ.get("INGEST_API_KEYS") or os.environ.get("INGEST_API_KEYS_SECRET")):
        yield
        return
    from ingest_api import IngestSettings, start_in_thread

    port = int(os.environ.get("INGEST_PORT", "0"))
    settings = IngestSettings(
        stream_name=stack.stack.stream_name, table_name=stack.stack.table_name
    )
    server = start_in_thread(settings, port=port)
    stack.extra["ingest_url"] = server.url
    try:
        yield
    finally:
        server.stop()


class StageCounters:
    """The in-process stages' counts for the dashboard: the producer reports through its
    on_progress callback (about every 0.25 s), read by the dashboard's thread."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def on_producer_progress(self, stats: Any) -> None:
        self.values = {"producer": stats.distinct, "producer_published": stats.published}

    def __call__(self) -> dict[str, float]:
        return dict(self.values)


@contextmanager
def start_dashboard(
    stack: EmbeddedStack, counters: StageCounters | None = None, *, enabled: bool = True
) -> Iterator[Any]:
    """Serve the live dashboard beside the embedded stack (DASHBOARD_HOST / DASHBOARD_PORT,
    127.0.0.1:8050 by default; a free port when that one is taken) and add its URL to the ready
    line. It reads the pipeline only while a page is open."""
    if not enabled:
        yield None
        return
    from dashboard import DashboardSettings, Probes
    from dashboard import start_in_thread as start_dashboard_server

    # What the stack knows wins; the rest (the compose services' metrics URLs) comes from the
    # environment, as for `tradestream dashboard`.
    known: dict[str, Any] = {
        "stream_name": stack.stack.stream_name,
        "table_name": stack.stack.table_name,
        "dlq_url": stack.stack.dlq_url,
        "bucket_name": stack.lake.bucket_name if stack.lake else None,
    }
    if stack.lake is not None:
        known |= {"data_prefix": stack.lake.data_prefix, "error_prefix": stack.lake.error_prefix}
    if stack.model_url:
        known["model_url"] = stack.model_url
    if "ingest_url" in stack.extra:
        known["ingest_metrics_url"] = f"{stack.extra['ingest_url']}/metrics"
    settings = DashboardSettings(**known)
    probes = Probes(counters=counters, lag=_lag_probe(stack), health=_health_probes(stack))
    try:
        server = start_dashboard_server(settings, probes)
    except OSError as exc:  # the usual port is taken (another `up`): any free one will do
        log.warning(
            "dashboard port %s unavailable (%s): serving on a free port",
            settings.dashboard_port,
            exc,
        )
        server = start_dashboard_server(settings, probes, port=0)
    stack.extra["dashboard_url"] = server.url
    try:
        yield server
    finally:
        server.stop()


def _lag_probe(stack: EmbeddedStack) -> Any:
    from tradestream.local.metrics import stage_lag

    return lambda: stage_lag(stack)


@contextmanager
def start_runtime_metrics(stack: EmbeddedStack) -> Iterator[None]:
    """The emulations' Prometheus metrics (iterator age per shard, deliveries, failures) on
    RUNTIME_METRICS_HOST:RUNTIME_METRICS_PORT (a free port when unset), ``metrics_url`` in the
    ready line."""
    from tradestream.local.metrics import start_metrics

    settings = stack.settings
    server = start_metrics(stack, settings.runtime_metrics_host, settings.runtime_metrics_port or 0)
    stack.extra["metrics_url"] = server.url
    try:
        yield
    finally:
        server.stop()


def _health_probes(stack: EmbeddedStack) -> dict[str, Any]:
    # The emulations run in this process: up while their reader threads are.
    probes: dict[str, Any] = {}
    for name, consumer in (("mapping", stack.mapping), ("firehose", stack.firehose)):
        if consumer is not None:
            probes[name] = lambda consumer=consumer: consumer.running
    return probes
