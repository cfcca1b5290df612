"""Kinesis helpers shared by the tests: create a stream, read everything back, expected ids."""

from __future__ import annotations

from typing import Any

from producer.settings import ProducerSettings
from producer.sources.synthetic import SyntheticSource
from tradestream import aws


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
