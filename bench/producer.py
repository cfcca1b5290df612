"""Producer benchmark: one put_record per trade (the naive way) against the batched publisher.

Run: ``python -m bench.producer [--trades 5000]``. Same machine, same moto server, same trades
(the seeded synthetic source), in one run. Reports trades/s and Kinesis API calls per 1,000 trades
for both, and the ratios. It also publishes to a bare stream made with one create_stream call and
to the stream of the locally deployed stack, to show that the local flavour of the templates
(no Lambda function, no event source mapping in moto) leaves puts unslowed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from typing import Any

from bench.common import CallCounter, report, stopwatch
from producer.publisher import KinesisPublisher
from producer.sources import SyntheticSource
from tradestream import aws
from tradestream.local.hot_path import deploy
from tradestream.local.moto_server import ensure_credentials, start_moto
from tradestream.trade import Trade


async def _trades(n: int) -> list[Trade]:
    source = SyntheticSource(("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT"), seed=7, max_trades=n)
    return [trade async for frame in source for trade in frame]


def naive(stream: str, trades: list[Trade]) -> dict[str, Any]:
    counter = CallCounter()
    kinesis = counter.attach(aws.client("kinesis"))
    with stopwatch() as timing:
        for trade in trades:
            kinesis.put_record(StreamName=stream, Data=trade.to_record(), PartitionKey=trade.s)
    return _row("naive put_record per trade", trades, counter.total, timing["seconds"])


async def batched(stream: str, trades: list[Trade]) -> dict[str, Any]:
    counter = CallCounter()
    async with aws.aio_client("kinesis", config=aws.NO_SDK_RETRIES) as kinesis:
        counter.attach(kinesis)
        with stopwatch() as timing:
            async with KinesisPublisher(kinesis, stream) as publisher:
                for trade in trades:
                    await publisher.put(trade)
        assert publisher.stats.published == len(trades), publisher.stats
    return _row("publisher (PutRecords batches)", trades, counter.total, timing["seconds"])


def _row(name: str, trades: list[Trade], calls: int, seconds: float) -> dict[str, Any]:
    return {
        "method": name,
        "trades": len(trades),
        "seconds": seconds,
        "trades/s": len(trades) / seconds,
        "API calls per 1,000 trades": calls * 1000 / len(trades),
    }


def _stack_stream() -> str:
    """The stream of a freshly deployed local stack (the templates, Flavour=local)."""
    name = uuid.uuid4().hex[:6]
    return deploy(stream_name=f"bench-{name}", table_name=f"bench_{name}").stream_name


def _bare_stream() -> str:
    """A stream made with one create_stream call: nothing else in moto knows about it."""
    name = f"bench-bare-{uuid.uuid4().hex[:6]}"
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return name


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(rows, key=lambda row: row["seconds"])[len(rows) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=5000)
    args = parser.parse_args()
    moto = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = moto.url
    os.environ.setdefault("AWS_REGION", "us-east-1")
    ensure_credentials()
    try:
        trades = asyncio.run(_trades(args.trades))
        # moto slows down as a stream fills up, so every measurement gets fresh, empty streams.
        slow = naive(_stack_stream(), trades)
        asyncio.run(batched(_bare_stream(), trades))  # warm-up: imports, connection pools
        stack_runs, bare_runs = [], []
        for _ in range(3):
            stack_runs.append(asyncio.run(batched(_stack_stream(), trades)))
            bare_runs.append(asyncio.run(batched(_bare_stream(), trades)))
        fast, fast_bare = _median(stack_runs), _median(bare_runs)
        fast_bare["method"] = "publisher, bare stream (no stack)"
        lambdas = aws.client("lambda")
        functions = lambdas.list_functions()["Functions"]
        mappings = lambdas.list_event_source_mappings()["EventSourceMappings"]
        report(
            "Producer: naive vs batched publisher (moto server on loopback)",
            [slow, fast, fast_bare],
            {
                "trades/s ratio (publisher / naive)": fast["trades/s"] / slow["trades/s"],
                "API calls ratio (naive / publisher)": slow["API calls per 1,000 trades"]
                / fast["API calls per 1,000 trades"],
                "deployed stack vs bare stream trades/s": fast["trades/s"] / fast_bare["trades/s"],
                "Lambda functions / mappings in moto (local flavour)": (
                    f"{len(functions)} / {len(mappings)}"
                ),
            },
        )
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
