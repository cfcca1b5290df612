"""`tradestream demo`: the embedded stack plus the synthetic producer, until N trades have been
produced and the hot path has drained, then a summary whose counts reconcile end to end."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tradestream import inspect
from tradestream.local.runtime import EmbeddedStack, embedded_stack
from tradestream.local.settings import LocalSettings


@dataclass
class DemoResult:
    produced: int  # distinct trades the source produced (duplicates re-sent by the source excluded)
    published_records: int  # Kinesis records accepted, duplicates included
    hotstore_items: int  # distinct items in DynamoDB
    dlq: int  # messages in the hotstore DLQ
    latency_ms: dict[str, float | None]
    drained: bool
    elapsed_s: float
    trades_per_s: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _progress_printer(
    snapshot: Callable[[], dict[str, int]], stop: threading.Event
) -> threading.Thread:
    """Live progress on stderr: a rewritten line on a terminal, a line every 2 s otherwise."""
    tty = sys.stderr.isatty()

    def loop() -> None:
        interval = 0.25 if tty else 2.0
        while not stop.wait(interval):
            values = snapshot()
            line = " | ".join(f"{k} {v:,}" for k, v in values.items())
            if tty:
                sys.stderr.write(f"\r{line}   ")
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
        if tty:
            sys.stderr.write("\n")

    thread = threading.Thread(target=loop, name="demo-progress", daemon=True)
    thread.start()
    return thread


def _wait_drained(stack: EmbeddedStack, expected: int, deadline: float) -> bool:
    """Drained = the mapping is caught up on every shard and DynamoDB holds every trade."""
    while time.monotonic() < deadline:
        caught_up = stack.mapping is None or stack.mapping.caught_up()
        if caught_up and inspect.count_items(stack.stack.table_name) >= expected:
            return True
        time.sleep(0.25)
    return False


def run_demo(trades: int, *, rate: float, timeout: float, seed: int = 7) -> DemoResult:
    from producer.app import run as run_producer  # the CLI launches deployables; core does not
    from producer.settings import ProducerSettings

    started = time.monotonic()
    with embedded_stack(LocalSettings()) as stack:
        settings = ProducerSettings(
            source="synthetic",
            stream_name=stack.stack.stream_name,
            max_trades=trades,
            synthetic_rate=rate,
            synthetic_seed=seed,
        )
        counters: dict[str, int] = {"produced": 0, "published": 0}

        def on_progress(stats: Any) -> None:
            counters["produced"] = stats.distinct
            counters["published"] = stats.published

        def snapshot() -> dict[str, int]:
            delivered = stack.mapping.stats.records_delivered if stack.mapping else 0
            return {**counters, "delivered to hotstore": delivered}

        stop_progress = threading.Event()
        printer = _progress_printer(snapshot, stop_progress)
        try:
            stats = asyncio.run(
                asyncio.wait_for(run_producer(settings, on_progress=on_progress), timeout)
            )
            remaining = max(1.0, timeout - (time.monotonic() - started))
            drained = _wait_drained(stack, stats.distinct, time.monotonic() + remaining)
        finally:
            stop_progress.set()
            printer.join(timeout=2)
        elapsed = time.monotonic() - started
        table = stack.stack.table_name
        return DemoResult(
            produced=stats.distinct,
            published_records=stats.published,
            hotstore_items=inspect.count_items(table),
            dlq=inspect.queue_depth(stack.stack.dlq_url),
            latency_ms=inspect.percentiles(inspect.latencies_ms(table)),
            drained=drained,
            elapsed_s=round(elapsed, 2),
            trades_per_s=round(stats.distinct / elapsed, 1) if elapsed else 0.0,
        )
