"""The producer end to end against moto server over real HTTP: every trade lands, in few calls."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from producer.app import run
from producer.settings import ProducerSettings
from producer.sources.synthetic import SyntheticSource
from tradestream import aws
from tradestream.trade import Trade


def create_stream(name: str, shards: int = 2) -> Any:
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    return kinesis


def read_stream(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record of every shard, from the start, with GetRecords."""
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page["NextShardIterator"]
    return records


async def expected_ids(seed: int, max_trades: int) -> list[str]:
    """The ids the deterministic synthetic source emits for this seed and limit."""
    source = SyntheticSource(ProducerSettings().symbols, seed=seed, max_trades=max_trades)
    return [trade.id async for frame in source for trade in frame]


async def test_every_synthetic_trade_lands_in_the_stream_in_few_calls(
    aws_env: str, unique: str
) -> None:
    # GIVEN a stream with two shards and a producer limited to 3,000 distinct trades
    stream = f"producer-{unique}"
    kinesis = create_stream(stream)
    settings = ProducerSettings(
        stream_name=stream, source="synthetic", max_trades=3000, synthetic_seed=11
    )
    # WHEN it runs to the end
    stats = await run(settings)
    # THEN every record it sent is in the stream: exactly the source's trades, duplicates included
    records = read_stream(kinesis, stream)
    ids = [json.loads(r["Data"])["id"] for r in records]
    expected = await expected_ids(11, 3000)
    assert Counter(ids) == Counter(expected)
    assert len(records) == stats.published == stats.received == stats.trades == len(expected)
    assert len(set(ids)) == stats.distinct == 3000
    assert (stats.failed, stats.buffered, stats.stopped_by) == (0, 0, "source_end")
    # AND every record is a valid trade keyed by its symbol
    for record in records:
        assert Trade.from_record(record["Data"]).s == record["PartitionKey"]
    # AND it took a handful of PutRecords calls, not one per record
    assert math.ceil(stats.trades / 500) <= stats.put_calls <= stats.trades / 100
