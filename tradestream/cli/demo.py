"""`tradestream demo`: the embedded stack plus the synthetic producer, until N trades have been
produced and the hot path has drained, then a summary whose counts reconcile end to end."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from tradestream import readback
from tradestream.cli.progress import live_progress
from tradestream.cli.up import StageCounters, start_dashboard, start_model_server
from tradestream.local.runtime import EmbeddedStack, embedded_stack
from tradestream.local.settings import LocalSettings
from tradestream.readback import count_lake


@dataclass
class DemoResult:
    produced: int  # distinct trades the source produced (duplicates re-sent by the source excluded)
    published_records: int  # Kinesis records accepted, duplicates included
    hotstore_items: int  # distinct items in DynamoDB
    dlq: int  # messages in the hotstore DLQ
    lake_records: int  # distinct trades under the lake's data prefix
    predicted: int  # of those, trades with a non-null prediction
    lake_errors: int  # records under the lake's error prefix
    latency_ms: dict[str, float | None]
    drained: bool
    elapsed_s: float  # start to both stages done: every trade in DynamoDB and the lake
    trades_per_s: float  # produced / elapsed_s, end to end
    audit_s: float  # reading the sinks back afterwards for these counts (not in elapsed_s)
    pace: str  # how the producer was paced, so the latency can be read for what it is

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _drain(
    stack: EmbeddedStack, expected: int, deadline: float
) -> tuple[bool, float, readback.HotStoreSummary]:
    """Wait until the pipeline is drained: the mapping has handled everything put before this
    call, the Firehose buffers are delivered to the lake (flushed, not left to their timers), and
    DynamoDB holds every trade. Returns whether it drained, when the stages were done (a
    ``time.monotonic()`` value), and the hot store as read back.

    The table is read only once the stages are done: a Scan reads every item, so counting while
    the stack works (as this did four times a second) made moto, on its one core, spend a fifth
    of its time scanning instead of serving the pipeline.
    """
    table = stack.stack.table_name
    since = time.monotonic()
    while True:
        done = _wait(partial(_mapping_done, stack, since), deadline)
        if done and stack.firehose is not None:
            done = stack.firehose.wait_caught_up(max(1.0, deadline - time.monotonic()), flush=True)
        done_at = time.monotonic()
        summary = readback.hot_store_summary(table)
        if done and summary.items >= expected:
            return True, done_at, summary
        if not done or time.monotonic() >= deadline:
            return False, done_at, summary
        time.sleep(0.5)  # handled but short: a redelivery still on its way
        since = time.monotonic()


def _mapping_done(stack: EmbeddedStack, since: float) -> bool:
    return stack.mapping is None or stack.mapping.caught_up(since=since)


def _wait(condition: Callable[[], bool], deadline: float) -> bool:
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def run_demo(
    trades: int,
    *,
    rate: float,
    timeout: float,
    seed: int = 7,
    dashboard: bool = True,
    on_ready: Callable[[EmbeddedStack], None] | None = None,
) -> DemoResult:
    """``rate``: synthetic trades per second, 0 flat out. ``on_ready`` is called once the stack
    (and the dashboard) are up, before the producer."""
    from producer.app import run as run_producer  # the CLI launches deployables; core does not
    from producer.settings import ProducerSettings

    started = time.monotonic()
    dashboard_counters = StageCounters()
    with (
        embedded_stack(LocalSettings(), model_server=start_model_server) as stack,
        start_dashboard(stack, dashboard_counters, enabled=dashboard),
    ):
        if "dashboard_url" in stack.extra:
            sys.stderr.write(f"tradestream demo: dashboard at {stack.extra['dashboard_url']}\n")
        if on_ready is not None:
            on_ready(stack)
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
            dashboard_counters.on_producer_progress(stats)

        def snapshot() -> dict[str, int]:
            delivered = stack.mapping.stats.user_records_delivered if stack.mapping else 0
            enriched = stack.firehose.stats.records_delivered if stack.firehose else 0
            return {**counters, "hotstore": delivered, "lake": enriched}

        with live_progress(snapshot):
            stats = asyncio.run(
                asyncio.wait_for(run_producer(settings, on_progress=on_progress), timeout)
            )
            remaining = max(1.0, timeout - (time.monotonic() - started))
            drained, done_at, hot = _drain(stack, stats.distinct, time.monotonic() + remaining)
        elapsed = done_at - started
        lake = (
            count_lake(
                stack.lake.bucket_name,
                data_prefix=stack.lake.data_prefix,
                error_prefix=stack.lake.error_prefix,
            )
            if stack.lake
            else None
        )
        return DemoResult(
            produced=stats.distinct,
            published_records=stats.published,
            hotstore_items=hot.items,
            dlq=readback.queue_depth(stack.stack.dlq_url),
            lake_records=lake.distinct_ids if lake else 0,
            predicted=lake.predicted if lake else 0,
            lake_errors=lake.errors if lake else 0,
            latency_ms=readback.percentiles(hot.latencies_ms),
            drained=drained,
            elapsed_s=round(elapsed, 2),
            trades_per_s=round(stats.distinct / elapsed, 1) if elapsed else 0.0,
            audit_s=round(time.monotonic() - done_at, 2),
            pace=_pace(rate),
        )


def _pace(rate: float) -> str:
    if rate == 0:
        return "flat out: the latency includes the backlog the hot path works through"
    return f"steady {rate:,.0f} trades/s"
