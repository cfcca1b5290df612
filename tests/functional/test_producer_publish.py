"""The producer end to end against moto server over real HTTP: every trade lands, in few calls."""

from __future__ import annotations

import json
import math
from collections import Counter

from producer.app import run
from producer.settings import ProducerSettings
from tests.support.kinesis import create_stream, expected_ids, read_stream
from tradestream.trade import Trade


async def test_every_synthetic_trade_lands_in_the_stream_in_few_calls(
    aws_env: str, unique: str
) -> None:
    # GIVEN a stream with two shards and a producer limited to 3,000 distinct trades
    stream = f"producer-{unique}"
    kinesis = create_stream(stream)
    # Plain records, one per trade, whatever AGGREGATION's default (the aggregated way is in
    # test_producer_aggregation.py)
    settings = ProducerSettings(
        stream_name=stream,
        source="synthetic",
        max_trades=3000,
        synthetic_seed=11,
        aggregation=False,
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
