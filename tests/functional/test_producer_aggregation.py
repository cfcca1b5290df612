"""The producer with AGGREGATION=true against moto server over real HTTP: every trade arrives
exactly, read back by tradestream.kpl and by aws-kinesis-agg; aggregates are packed per shard;
under partial failures only the refused aggregates are resent, and trades and Kinesis records
reconcile apart."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from producer.app import run
from producer.settings import ProducerSettings
from tests.support.deaggregated import by_aws_kinesis_agg, by_kpl, trade_ids
from tests.support.faults import FaultProxy
from tests.support.kinesis import create_stream, expected_ids, read_stream
from tradestream import kpl
from tradestream.aggregation import ShardMap
from tradestream.local.moto_server import MotoHandle


def settings_for(stream: str, trades: int, **overrides: Any) -> ProducerSettings:
    return ProducerSettings(
        stream_name=stream,
        source="synthetic",
        max_trades=trades,
        synthetic_seed=31,
        aggregation=True,
        max_put_attempts=30,
        put_backoff_base_seconds=0.01,
        put_backoff_max_seconds=0.05,
        **overrides,
    )


async def test_with_aggregation_every_trade_arrives_exactly_in_aggregates_per_shard(
    aws_env: str, unique: str
) -> None:
    # GIVEN a stream of 2 shards and a producer with aggregation on
    stream = f"agg-{unique}"
    kinesis = create_stream(stream, shards=2)
    # WHEN 5,000 distinct trades are produced
    stats = await run(settings_for(stream, 5000))
    # THEN both readers find exactly the source's trades in the stream, duplicates included
    records = read_stream(kinesis, stream)
    ours, theirs = by_kpl(records), by_aws_kinesis_agg(records)
    assert ours == theirs
    assert Counter(trade_ids(ours)) == Counter(await expected_ids(31, 5000))
    # AND trades and Kinesis records are counted apart, each matching the stream
    assert len(ours) == stats.published == stats.received == stats.trades
    assert (stats.failed, stats.buffered) == (0, 0)
    assert stats.kinesis_records_put == len(records)
    assert stats.aggregates_put == sum(1 for r in records if kpl.is_aggregate(r["Data"]))
    assert stats.trades_per_kinesis_record == round(stats.published / len(records), 2) > 50
    # AND every trade of an aggregate is on the shard of the key the aggregate was put under
    shards = ShardMap.from_list_shards(kinesis.list_shards(StreamName=stream)["Shards"])
    for record in records:
        users = kpl.deaggregate(record["Data"], record["PartitionKey"])
        assert {shards.shard_of(u.partition_key) for u in users} == {
            shards.shard_of(record["PartitionKey"])
        }
    # AND with 4 symbols on 2 shards, keys do share aggregates
    assert any(
        len({u.partition_key for u in kpl.deaggregate(r["Data"], r["PartitionKey"])}) > 1
        for r in records
    )


async def test_with_aggregation_partial_failures_resend_only_the_refused_aggregates(
    aws_env: str, moto: MotoHandle, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN small aggregates (2 KiB, a dozen trades) behind a proxy failing ~20% of entries
    stream = f"agg-faults-{unique}"
    kinesis = create_stream(stream, shards=2)
    with FaultProxy(moto.url, seed=7) as proxy:
        proxy.kinesis_put_failure_rate = 0.2
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        # WHEN 3,000 distinct trades are produced through it
        stats = await run(settings_for(stream, 3000, aggregation_max_bytes=2048))
    # THEN every trade is in the stream exactly as often as the source sent it: no accepted
    # aggregate was sent again, and none refused was lost
    records = read_stream(kinesis, stream)
    ours = by_kpl(records)
    assert Counter(trade_ids(ours)) == Counter(await expected_ids(31, 3000))
    assert trade_ids(by_aws_kinesis_agg(records)) == trade_ids(ours)
    # AND the Kinesis records resent are exactly the entries the proxy refused
    injected = proxy.injected["PutRecords:entries"]
    assert stats.kinesis_records_retried == injected > 10
    assert stats.kinesis_records_put == len(records)
    assert stats.put_calls == proxy.counts["PutRecords"]
    # AND trades reconcile, the resent ones counted per trade they carried
    assert stats.received == stats.published + stats.failed + stats.buffered
    assert (stats.published, stats.failed) == (len(ours), 0)
    assert injected < stats.retried < 20 * injected
    print(f"records={len(records)} refused={injected} trades resent={stats.retried}")
