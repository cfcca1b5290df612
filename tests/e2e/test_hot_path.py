"""End to end on the embedded stack: producer -> Kinesis -> event source mapping -> hotstore
Lambda -> DynamoDB, with faults injected. Every count is exact."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from producer.app import ProducerStats, run
from producer.settings import ProducerSettings
from tests.e2e.conftest import HotPath
from tests.support.deaggregated import stream_trades
from tests.support.fake_finnhub import FakeFinnhub
from tests.support.kinesis import expected_ids
from tradestream import aws, readback

DRAIN_TIMEOUT = 60


def wait_drained(hot_path: HotPath, expected_items: int) -> None:
    """Wait until the mapping is at the tip of every shard and the table holds every trade."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    mapping = hot_path.stack.mapping
    assert mapping is not None
    while time.monotonic() < deadline:
        if mapping.caught_up() and readback.count_items(hot_path.table) >= expected_items:
            return
        time.sleep(0.2)
    pytest.fail(
        f"not drained: {readback.count_items(hot_path.table)} of {expected_items} items, "
        f"mapping stats {mapping.stats}"
    )


def produce(hot_path: HotPath, **overrides: object) -> ProducerStats:
    settings = ProducerSettings(stream_name=hot_path.stream, **overrides)  # type: ignore[arg-type]
    return asyncio.run(run(settings))


def dlq_messages(hot_path: HotPath) -> list[dict[str, object]]:
    sqs = aws.client("sqs")
    bodies = []
    while True:
        page = sqs.receive_message(
            QueueUrl=hot_path.stack.stack.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        if not page.get("Messages"):
            return bodies
        bodies += [json.loads(m["Body"]) for m in page["Messages"]]


def test_throttled_puts_and_unprocessed_writes_lose_nothing(hot_path: HotPath) -> None:
    # GIVEN ~20% of PutRecords entries throttled and ~30% of BatchWriteItem items left unprocessed
    hot_path.proxy.kinesis_put_failure_rate = 0.2
    hot_path.proxy.dynamodb_unprocessed_rate = 0.3
    # WHEN the synthetic producer sends 3,000 distinct trades (plus the duplicates it re-sends)
    stats = produce(
        hot_path,
        source="synthetic",
        max_trades=3000,
        synthetic_seed=21,
        put_backoff_base_seconds=0.01,
        put_backoff_max_seconds=0.05,
    )
    wait_drained(hot_path, 3000)
    # THEN every distinct trade is exactly one DynamoDB item and nothing went to the DLQ
    assert stats.distinct == 3000
    assert stats.failed == 0
    assert stats.published == stats.trades  # every record, duplicates included, reached Kinesis
    assert readback.count_items(hot_path.table) == 3000
    assert readback.queue_depth(hot_path.stack.stack.dlq_url) == 0
    # AND the faults really happened, and the producer resent exactly the refused Kinesis
    # records (aggregates, by default: each carries a few hundred trades)
    assert stats.kinesis_records_retried == hot_path.proxy.injected["PutRecords:entries"] > 0
    assert stats.retried >= stats.kinesis_records_retried
    assert hot_path.proxy.injected["BatchWriteItem:unprocessed"] > 0


def test_one_poison_record_goes_to_the_dlq_and_the_shard_keeps_moving(hot_path: HotPath) -> None:
    # GIVEN a stream with valid trades before and after one record that is not a trade
    first = produce(hot_path, source="synthetic", max_trades=500, synthetic_seed=1)
    poison = b'{"s": "AAPL", "p": "not a price"'
    kinesis = aws.client("kinesis")
    kinesis.put_record(StreamName=hot_path.stream, Data=poison, PartitionKey="AAPL")
    second = produce(hot_path, source="synthetic", max_trades=500, synthetic_seed=2)
    # WHEN the hot path drains
    wait_drained(hot_path, first.distinct + second.distinct)
    # THEN the poison record is in the DLQ with its data, once
    messages = dlq_messages(hot_path)
    assert len(messages) == 1
    assert base64.b64decode(str(messages[0]["data"])) == poison
    # AND every valid trade, including those after the poison on the same shard, is in DynamoDB
    assert readback.count_items(hot_path.table) == first.distinct + second.distinct == 1000


async def test_finnhub_drop_mid_stream_loses_nothing_after_the_reconnect(
    hot_path: HotPath,
) -> None:
    # GIVEN the producer reading the fake Finnhub server into the embedded stack
    t0 = 1_700_000_000_000
    latest: list[ProducerStats] = []

    async def until(condition: Callable[[ProducerStats], bool]) -> None:
        async with asyncio.timeout(10):
            while not latest or not condition(latest[-1]):  # noqa: ASYNC110 - polls a callback's list
                await asyncio.sleep(0.05)

    async with FakeFinnhub(token="e2e") as finnhub:
        settings = ProducerSettings(
            stream_name=hot_path.stream,
            finnhub_api_key=SecretStr("e2e"),
            finnhub_url=finnhub.url,
            symbols=("AAPL", "MSFT"),
            reconnect_backoff_base_seconds=0.05,
            reconnect_backoff_max_seconds=0.1,
        )
        stop = asyncio.Event()
        producer = asyncio.create_task(run(settings, stop=stop, on_progress=latest.append))
        await finnhub.wait_subscribed({"AAPL", "MSFT"})
        await finnhub.send_trades(
            [{"s": "AAPL", "p": 100 + i, "v": 1, "t": t0 + i} for i in range(50)]
        )
        await until(lambda stats: stats.received == 50)
        # WHEN the connection drops abruptly mid-stream and trades continue after the reconnect
        await finnhub.drop()
        await finnhub.wait_subscribed({"AAPL", "MSFT"})
        await finnhub.send_trades(
            [{"s": "MSFT", "p": 200 + i, "v": 2, "t": t0 + 100 + i} for i in range(50)]
        )
        await until(lambda stats: stats.published == 100)
        stop.set()
        stats = await asyncio.wait_for(producer, 30)
    await asyncio.to_thread(wait_drained, hot_path, 100)
    # THEN the 100 trades, those after the reconnect included, are in DynamoDB
    assert stats.distinct == stats.published == 100
    assert readback.count_items(hot_path.table) == 100
    assert finnhub.connections == 2


@pytest.mark.slow
def test_sigterm_with_a_full_buffer_publishes_everything_received(
    hot_path: HotPath, tmp_path: Path
) -> None:
    # GIVEN `python -m producer` whose buffer is full because Kinesis refuses 90% of entries
    hot_path.proxy.kinesis_put_failure_rate = 0.9
    env = {
        **os.environ,
        "STREAM_NAME": hot_path.stream,
        "SOURCE": "synthetic",
        "SYNTHETIC_SEED": "9",
        "BUFFER_MAX_RECORDS": "2000",
        "MAX_PUT_ATTEMPTS": "100",
        "PUT_BACKOFF_BASE_SECONDS": "0.01",
        "PUT_BACKOFF_MAX_SECONDS": "0.05",
        "SHUTDOWN_DEADLINE_SECONDS": "20",
    }
    with (tmp_path / "stderr.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "producer"], env=env, stdout=subprocess.PIPE, stderr=log
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and hot_path.proxy.counts["PutRecords"] < 20:
            time.sleep(0.05)
        # WHEN SIGTERM arrives with the buffer full, and Kinesis recovers during the shutdown
        child.send_signal(signal.SIGTERM)
        hot_path.proxy.kinesis_put_failure_rate = 0.0
        stdout, _ = child.communicate(timeout=40)
    stats = json.loads(stdout.decode().strip().splitlines()[-1])
    # THEN it exits cleanly, having published everything it received
    assert child.returncode == 0
    assert stats["buffered_peak"] == 2000
    assert stats["received"] == stats["published"] > 2000
    assert stats["failed"] == 0
    # AND every published record's trade reaches DynamoDB through the hot path
    ids = {t["id"] for t in stream_trades(aws.client("kinesis"), hot_path.stream)}
    wait_drained(hot_path, len(ids))
    assert readback.count_items(hot_path.table) == len(ids)


@pytest.mark.slow
async def test_ids_are_the_synthetic_sources_ids(hot_path: HotPath) -> None:
    # GIVEN the ids the seeded synthetic source emits
    ids = set(await expected_ids(seed=5, max_trades=800))
    # WHEN it runs through the whole hot path
    await asyncio.to_thread(produce, hot_path, source="synthetic", max_trades=800, synthetic_seed=5)
    await asyncio.to_thread(wait_drained, hot_path, 800)
    # THEN the table holds exactly those ids
    stored = set()
    for page in (
        aws.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=hot_path.table, ProjectionExpression="id")
    ):
        stored |= {item["id"]["S"] for item in page["Items"]}
    assert stored == ids
