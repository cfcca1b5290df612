"""Aggregation benchmark: Kinesis records and PUT payload units per 1,000 trades, with and without.

Run: ``python -m bench.aggregation [--trades 5000] [--shards 4]``. The producer
(``producer.app.run``, its synthetic source with one seed, so the same trades every time) puts to
moto server on loopback, to a fresh stream of ``--shards`` shards per case, once for each way:

- **plain**: one Kinesis record per trade (AGGREGATION=false, the naive way);
- **per partition key**: KPL aggregates holding one symbol each (what the producer falls back to
  without ListShards);
- **per shard**: KPL aggregates holding every symbol of one shard (the producer's way).

Each with the default 4 symbols and with 50 (Finnhub's most per connection), flat out and paced
at 1,000 trades/s (the rate one shard takes without aggregation), where calls are small.
Counted from every PutRecords entry Kinesis accepted: Kinesis records, PUT payload units (25 KiB
each, every record rounded up, which is how Kinesis bills writes) and bytes, per 1,000 trades.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from bench.common import report
from producer.app import run
from producer.settings import DEFAULT_SYMBOLS, ProducerSettings
from tradestream import aws
from tradestream.aggregation import PUT_PAYLOAD_UNIT_BYTES
from tradestream.local.moto_server import ensure_credentials, start_moto

WAYS = ("plain", "per partition key", "per shard")
MANY_SYMBOLS = tuple(f"SYM{i:02d}" for i in range(50))


class AcceptedRecords:
    """The producer's Kinesis client, noting the size of every entry Kinesis accepted; without
    ``list_shards`` when the way under test packs per partition key."""

    def __init__(self, client: Any, shards: bool) -> None:
        self._client = client
        self.sizes: list[int] = []
        if shards:
            self.list_shards = client.list_shards

    async def put_records(
        self, *, StreamName: str, Records: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self._client.put_records(
            StreamName=StreamName, Records=Records
        )
        for record, result in zip(Records, answer["Records"], strict=True):
            if "ErrorCode" not in result:
                self.sizes.append(len(record["Data"]) + len(record["PartitionKey"].encode()))
        return answer


def _stream(shards: int) -> str:
    name = f"bench-agg-{uuid.uuid4().hex[:8]}"
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return name


async def measure(
    way: str, symbols: tuple[str, ...], rate: float, trades: int, shards: int
) -> dict[str, Any]:
    settings = ProducerSettings(
        stream_name=_stream(shards),
        source="synthetic",
        symbols=symbols,
        synthetic_seed=7,
        synthetic_rate=rate,
        max_trades=trades,
        aggregation=way != "plain",
    )
    async with aws.aio_client("kinesis", config=aws.NO_SDK_RETRIES) as client:
        counting = AcceptedRecords(client, shards=way == "per shard")
        stats = await run(settings, kinesis=counting)
    assert (stats.failed, stats.published) == (0, stats.trades), stats
    per_1k = 1000 / stats.published
    units = sum(math.ceil(size / PUT_PAYLOAD_UNIT_BYTES) for size in counting.sizes)
    return {
        "symbols": len(symbols),
        "rate": f"{rate:,.0f}/s" if rate else "flat out",
        "way": way,
        "trades": stats.published,
        "Kinesis records / 1k trades": len(counting.sizes) * per_1k,
        "PUT payload units / 1k trades": units * per_1k,
        "KiB / 1k trades": sum(counting.sizes) / 1024 * per_1k,
        "trades / record": stats.published / len(counting.sizes),
        "PutRecords calls": stats.put_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    moto = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = moto.url
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    ensure_credentials()
    rows: list[dict[str, Any]] = []
    try:
        for symbols in (DEFAULT_SYMBOLS, MANY_SYMBOLS):
            for rate in (0.0, 1000.0):
                for way in WAYS:
                    row = asyncio.run(measure(way, symbols, rate, args.trades, args.shards))
                    rows.append(row)
    finally:
        moto.stop()
    plain = {(r["symbols"], r["rate"]): r for r in rows if r["way"] == "plain"}
    ratios = {
        f"records cut, per shard vs plain, {s} symbols, {rate}": plain[(s, rate)][
            "Kinesis records / 1k trades"
        ]
        / r["Kinesis records / 1k trades"]
        for r in rows
        if r["way"] == "per shard"
        for s, rate in [(r["symbols"], r["rate"])]
    }
    report(
        f"Aggregation: Kinesis records and PUT payload units per 1,000 trades "
        f"(producer -> moto server, {args.shards} shards, {args.trades:,} trades a case)",
        rows,
        {
            "PUT payload unit": f"{PUT_PAYLOAD_UNIT_BYTES:,} bytes, each record rounded up",
            **ratios,
        },
    )


if __name__ == "__main__":
    main()
