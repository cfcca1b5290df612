"""Trades per second one shard takes, with KPL aggregation against without, limits on.

Run: ``python -m bench.shard_throughput [--seconds 10]``. The producer (``producer.app.run``, its
synthetic source unbounded, everything else at the producer's defaults) pushes as fast as it can
for ``--seconds`` into a fresh one-shard stream of the embedded Kinesis with AWS's per-shard
write limits on (``start_moto(shard_limits=True)``: 1,000 records/s and 1 MiB/s), then stops
and flushes what it holds, once each way in one run:

- **plain** (AGGREGATION=false, the naive way): one Kinesis record per trade, so the shard's
  1,000 records/s is 1,000 trades/s;
- **aggregated** (AGGREGATION=true): KPL aggregates, so the shard's 1 MiB/s is the limit.

The figure is trades delivered per second from the producer's start to the end of its flush
(the buffer it filled while throttled drains at the shard's rate too). The stream is read back
and every Kinesis record deaggregated (``tradestream.kpl.deaggregate``): each way must deliver
exactly the trades the producer published, none lost, and leave no throttled record unretried
(the publisher's ``failed`` is 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from collections import Counter
from typing import Any

from bench.common import report
from producer.app import run
from producer.settings import ProducerSettings
from tradestream import aws, kpl
from tradestream.local.moto_server import ensure_credentials, start_moto

WAYS = {"plain": False, "aggregated": True}


def _stream() -> str:
    name = f"bench-shard-{uuid.uuid4().hex[:8]}"
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return name


def delivered(stream: str) -> tuple[Counter[str], int, int]:
    """The trade ids in the stream (deaggregated), its Kinesis records and its aggregates."""
    kinesis = aws.client("kinesis")
    ids: Counter[str] = Counter()
    records = aggregates = 0
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while page := kinesis.get_records(ShardIterator=iterator, Limit=10_000):
            if not page["Records"]:
                break
            for record in page["Records"]:
                records += 1
                aggregates += kpl.is_aggregate(record["Data"])
                for user in kpl.deaggregate(record["Data"], record["PartitionKey"]):
                    ids[json.loads(user.data)["id"]] += 1
            iterator = page["NextShardIterator"]
    return ids, records, aggregates


async def push_for(seconds: float, settings: ProducerSettings) -> Any:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await run(settings, stop=stop)


def measure(way: str, seconds: float) -> dict[str, Any]:
    stream = _stream()
    settings = ProducerSettings(
        stream_name=stream, source="synthetic", synthetic_seed=7, aggregation=WAYS[way]
    )
    stats = asyncio.run(push_for(seconds, settings))
    ids, records, aggregates = delivered(stream)
    # Nothing lost, nothing left unretried: every trade published is in the stream, once per
    # time it was published (the source's own duplicates included), and none failed.
    assert stats.failed == 0, stats
    assert sum(ids.values()) == stats.published == stats.received, (sum(ids.values()), stats)
    return {
        "way": way,
        "trades": stats.published,
        "distinct": len(ids),
        "seconds": stats.elapsed_s,
        "trades/s": stats.published / stats.elapsed_s,
        "Kinesis records": records,
        "aggregates": aggregates,
        "entries retried": stats.kinesis_records_retried,
        "failed": stats.failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    moto = start_moto(shard_limits=True)
    os.environ["AWS_ENDPOINT_URL"] = moto.url
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    ensure_credentials()
    try:
        rows = [measure(way, args.seconds) for way in WAYS]
    finally:
        moto.stop()
    plain, aggregated = rows
    report(
        "One shard, AWS's write limits on: trades/s with and without aggregation",
        rows,
        {
            "trades/s ratio (aggregated / plain)": aggregated["trades/s"] / plain["trades/s"],
            "seconds pushed each way": args.seconds,
        },
    )


if __name__ == "__main__":
    main()
