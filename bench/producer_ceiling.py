"""Producer CPU ceiling: trades/s on one core against an instant Kinesis, with and without
aggregation.

Run: ``python -m bench.producer_ceiling [--trades 200000] [--rounds 3]``. The Kinesis stand-in of
the ingest benchmark (``bench.ingest``: every PutRecords entry accepted at once, one shard, in a
process of its own) takes the calls, so what is measured is the producer's own cost: the CPU time
of this process (one event loop, one core at most) while it runs. Two shapes, each plain
(AGGREGATION=false, one Kinesis record per trade) and aggregated (per shard):

- **producer**: ``producer.app.run`` with its synthetic source flat out (MAX_TRADES), as
  ``python -m producer`` runs: the source's cost (seeded market, ids) included;
- **publisher**: ``KinesisPublisher.put`` of trades built beforehand: the publishing path alone.

Rounds alternate the ways; the median round is reported. trades/s per CPU second is the ceiling
on one core; wall trades/s also counts the time the machine gave to other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bench.common import report
from bench.ingest import DUMMY_AWS, STREAM, kinesis_target
from producer.app import run
from producer.publisher import KinesisPublisher
from producer.settings import DEFAULT_SYMBOLS, ProducerSettings
from producer.sources import SyntheticSource
from tradestream import aws
from tradestream.aggregation import AGGREGATION_DEFAULT_MAX_BYTES, ShardRouter
from tradestream.trade import Trade

TARGET_TRADES_PER_CPU_SECOND = 50_000


async def _trades(n: int) -> list[Trade]:
    source = SyntheticSource(DEFAULT_SYMBOLS, seed=7, max_trades=n)
    return [trade async for frame in source for trade in frame]


async def producer(aggregation: bool, trades: int) -> int:
    settings = ProducerSettings(
        stream_name=STREAM,
        source="synthetic",
        synthetic_seed=7,
        max_trades=trades,
        aggregation=aggregation,
    )
    stats = await run(settings)
    assert (stats.failed, stats.published) == (0, stats.trades), stats
    return stats.published


async def publisher(aggregation: bool, trades: list[Trade]) -> int:
    async with (
        aws.aio_client("kinesis", config=aws.NO_SDK_RETRIES) as client,
        KinesisPublisher(
            client,
            STREAM,
            aggregation_max_bytes=AGGREGATION_DEFAULT_MAX_BYTES if aggregation else None,
            shards=ShardRouter(client, STREAM) if aggregation else None,
        ) as publishing,
    ):
        for trade in trades:
            await publishing.put(trade)
    assert publishing.stats.published == len(trades), publishing.stats
    return publishing.stats.published


def timed(work: Callable[[], Coroutine[Any, Any, int]]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    published = asyncio.run(work())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"trades": published, "cpu_s": cpu, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    built = asyncio.run(_trades(args.trades))
    shapes: dict[str, Callable[[bool], Callable[[], Coroutine[Any, Any, int]]]] = {
        "producer (synthetic source + publisher)": lambda agg: lambda: producer(agg, args.trades),
        "publisher alone (trades built beforehand)": lambda agg: lambda: publisher(agg, built),
    }
    runs: dict[tuple[str, bool], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, kinesis_target("standin", Path(tmp)) as (url, _):
        os.environ.update({**DUMMY_AWS, "AWS_ENDPOINT_URL_KINESIS": url})
        for shape, make in shapes.items():
            timed(make(True))  # warm-up: imports, connection pools
            for _ in range(args.rounds):
                for aggregation in (False, True):
                    runs.setdefault((shape, aggregation), []).append(timed(make(aggregation)))
    rows: list[dict[str, Any]] = []
    for (shape, aggregation), measured in runs.items():
        median = sorted(measured, key=lambda m: m["cpu_s"] / m["trades"])[len(measured) // 2]
        rows.append(
            {
                "shape": shape,
                "aggregation": aggregation,
                "trades": int(median["trades"]),
                "trades/s per CPU second": median["trades"] / median["cpu_s"],
                "µs CPU per trade": 1e6 * median["cpu_s"] / median["trades"],
                "wall trades/s": median["trades"] / median["wall_s"],
            }
        )
    ceiling = {(r["shape"], r["aggregation"]): r["trades/s per CPU second"] for r in rows}
    whole = "producer (synthetic source + publisher)"
    report(
        "Producer CPU ceiling against an instant Kinesis stand-in (one core)",
        rows,
        {
            "rounds": f"{args.rounds}, median by CPU per trade",
            "aggregated vs plain, producer": ceiling[(whole, True)] / ceiling[(whole, False)],
            f"target >= {TARGET_TRADES_PER_CPU_SECOND:,} trades/s with aggregation met": ceiling[
                (whole, True)
            ]
            >= TARGET_TRADES_PER_CPU_SECOND,
        },
    )


if __name__ == "__main__":
    main()
