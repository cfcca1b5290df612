"""Nothing lost when the runtime dies: `tradestream local runtime` (the compose runtime: the event
source mapping and the Firehose emulation) as subprocesses against one moto server, SIGKILLed
while trades are put, then started again or taken over by a second runtime.

Both sinks must hold every trade afterwards, the DLQ and the error prefix nothing, and the lake at
most the duplicates a restart may re-send: the records written to S3 after the slowest buffer of
a shard opened, which is at most what arrived within one buffer interval (plus the processor's)
before the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest

from tests.support.prometheus import samples
from tradestream.local.moto_server import MotoHandle
from tradestream.readback import count_items, lines, queue_depth
from tradestream.trade import stream_records

LEASE_S = 2.0
S3_INTERVAL_S = 2
PROCESSOR_INTERVAL_S = 1
RATE = 250  # trades/s
# What a restart may re-send: what arrived within one buffer interval (both stages), plus 1 s of
# slack for the checkpoint write and the poll.
RESEND_WINDOW_S = S3_INTERVAL_S + PROCESSOR_INTERVAL_S + 1.0


@dataclass
class Names:
    stream: str
    table: str
    bucket: str

    def environment(self, moto: MotoHandle) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        return {
            **inherited,
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "STREAM_NAME": self.stream,
            "TABLE_NAME": self.table,
            "BUCKET_NAME": self.bucket,
            "LEASE_DURATION_SECONDS": str(LEASE_S),
            "LAKE_S3_INTERVAL_SECONDS": str(S3_INTERVAL_S),
            "LAKE_PROCESSOR_INTERVAL_SECONDS": str(PROCESSOR_INTERVAL_S),
            "RUNTIME_METRICS_PORT": "0",
        }


@pytest.fixture
def names(unique: str) -> Names:
    return Names(f"recover-{unique}", f"recover_{unique}", f"recover-{unique}")


@dataclass
class Runtime:
    process: subprocess.Popen[str]
    ready: dict[str, Any]

    def metric(self, name: str, stage: str) -> float:
        text = httpx.get(self.ready["metrics_url"], timeout=5).text
        return samples(text).get(f'{name}{{stage="{stage}"}}', 0.0)


@contextmanager
def runtime(moto: MotoHandle, names: Names) -> Iterator[Runtime]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tradestream.cli.main", "local", "runtime"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=names.environment(moto),
    )
    try:
        assert process.stdout is not None
        yield Runtime(process, json.loads(process.stdout.readline()))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class Producer:
    """Puts ``total`` trades at ``RATE`` from a thread, recording when each batch went in."""

    moto: MotoHandle
    stream: str
    total: int
    sent: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, trades so far)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(timeout=120)

    def sent_between(self, start: float, end: float) -> int:
        before = max((n for at, n in self.sent if at <= start), default=0)
        until = max((n for at, n in self.sent if at <= end), default=0)
        return until - before

    def _run(self) -> None:
        kinesis = boto3.client(
            "kinesis",
            endpoint_url=self.moto.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        batch = 25
        symbols = ("AAPL", "MSFT", "NVDA", "AMZN")
        for first in range(0, self.total, batch):
            trades = [
                {"s": symbols[n % 4], "p": 100 + n / 100, "v": 1.0, "t": 1_765_000_000_000 + n}
                for n in range(first, min(first + batch, self.total))
            ]
            records = stream_records(trades)  # type: ignore[arg-type]
            entries = [{"Data": data, "PartitionKey": key} for _, key, data in records]
            while entries:
                answer = kinesis.put_records(StreamName=self.stream, Records=entries)
                entries = [
                    e for e, r in zip(entries, answer["Records"], strict=True) if r.get("ErrorCode")
                ]
            self.sent.append((time.monotonic(), first + len(records)))
            time.sleep(batch / RATE)


def lake_ids(bucket: str) -> Counter[str]:
    return Counter(line["id"] for line in lines(bucket, "trades/"))


def wait_until_everything_arrived(names: Names, total: int, timeout: float = 90) -> Counter[str]:
    deadline = time.monotonic() + timeout
    ids: Counter[str] = Counter()
    while time.monotonic() < deadline:
        ids = lake_ids(names.bucket)
        if len(ids) >= total and count_items(names.table) >= total:
            return ids
        time.sleep(1)
    return ids


def test_a_sigkilled_runtime_started_again_loses_nothing(
    aws_env: str, moto: MotoHandle, names: Names
) -> None:
    # GIVEN the runtime, and 2,500 trades being put at 250/s
    producer = Producer(moto, names.stream, total=2500)
    with runtime(moto, names) as first:
        producer.start()
        time.sleep(4)
        # WHEN it is SIGKILLed mid-stream (no flush, no release of its leases)
        first.process.kill()
        first.process.wait(timeout=10)
        killed_at = time.monotonic()
        dlq_url = first.ready["dlq_url"]

    # AND started again, while the trades keep coming
    with runtime(moto, names):
        producer.join()
        ids = wait_until_everything_arrived(names, 2500)

    # THEN every trade is in DynamoDB and in the lake, nothing in the DLQ or the error prefix
    assert count_items(names.table) == 2500
    assert len(ids) == 2500
    assert queue_depth(dlq_url) == 0
    assert list(lines(names.bucket, "errors/")) == []
    # AND the lake's duplicates are at most what arrived within one buffer interval of the kill
    duplicates = sum(ids.values()) - len(ids)
    assert duplicates <= producer.sent_between(killed_at - RESEND_WINDOW_S, killed_at)


def test_two_runtimes_never_both_deliver_and_the_survivor_takes_over(
    aws_env: str, moto: MotoHandle, names: Names
) -> None:
    # GIVEN two runtimes against one stream, and 2,500 trades being put at 250/s
    producer = Producer(moto, names.stream, total=2500)
    with runtime(moto, names) as first, runtime(moto, names) as second:
        producer.start()
        time.sleep(4)
        # THEN the first holds every shard's lease and the second delivers nothing
        for stage in ("hotstore", "lake"):
            assert first.metric("runtime_shards_leased", stage) == 2
            assert second.metric("runtime_shards_leased", stage) == 0
            assert second.metric("runtime_records_delivered_total", stage) == 0

        # WHEN the first is SIGKILLed
        delivered_by_first = first.metric("runtime_records_delivered_total", "hotstore")
        first.process.kill()
        first.process.wait(timeout=10)
        killed_at = time.monotonic()
        sent_at_kill = producer.sent_between(0, killed_at)
        assert delivered_by_first > 0
        producer.join()
        ids = wait_until_everything_arrived(names, 2500)

        # THEN the second took its shards over once their leases expired, and delivered the rest
        for stage in ("hotstore", "lake"):
            assert second.metric("runtime_shards_leased", stage) == 2
        delivered_by_second = second.metric("runtime_records_delivered_total", "hotstore")
        window = producer.sent_between(killed_at - RESEND_WINDOW_S, killed_at)
        assert delivered_by_second >= 2500 - sent_at_kill
        # At most what the first had not checkpointed: past its last scrape, plus the batch per
        # shard it may have had in flight (BatchSize 500).
        assert delivered_by_second <= 2500 - delivered_by_first + 2 * 500
        dlq_url = second.ready["dlq_url"]

    # AND the counts reconcile: every trade once in DynamoDB and in the lake, no DLQ, no errors
    assert count_items(names.table) == 2500
    assert len(ids) == 2500
    assert queue_depth(dlq_url) == 0
    duplicates = sum(ids.values()) - len(ids)
    assert duplicates <= window
