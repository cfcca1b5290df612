"""The local runtime's Prometheus endpoint (``tradestream.local.metrics``) over real HTTP: on the
embedded stack its counters are the emulations' own and the lag falls to 0 once caught up; a
stage held back (a handler that does not return, a transform buffer that does not drain) shows
an iterator age that grows, and falls back to 0 once it catches up."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.kinesis import create_stream
from tests.support.stacks import embedded_lake_stack
from tradestream import aws
from tradestream.cfn.template import TEMPLATE_DIR, load_template, resolver_for
from tradestream.local.esm.mapping import KinesisEventSourceMapping
from tradestream.local.firehose.delivery import FirehoseEmulation
from tradestream.local.firehose.settings import delivery_stream_settings
from tradestream.local.hot_path import deploy
from tradestream.local.metrics import stage_lag, start_metrics
from tradestream.local.runtime import EmbeddedStack
from tradestream.synthetic import raw_frames
from tradestream.trade import Trade, stamp

WAIT_S = 30.0
SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Stages:
    """Just the stages the metrics read, for emulations run outside an embedded stack."""

    mapping: KinesisEventSourceMapping | None = None
    firehose: FirehoseEmulation | None = None


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def by_shard(samples: Samples, name: str, stage: str) -> dict[str, float]:
    return {
        dict(labels)["shard"]: v
        for (sample, labels), v in samples.items()
        if sample == name and dict(labels)["stage"] == stage
    }


def some_trades(count: int) -> list[Trade]:
    trades: list[Trade] = []
    for raws in raw_frames(SYMBOLS, 5):
        trades += stamp(raws, int(time.time() * 1000))
        if len(trades) >= count:
            return trades[:count]
    return trades


def put_trades(kinesis: Any, stream: str, trades: list[Trade]) -> None:
    for start in range(0, len(trades), 500):
        response = kinesis.put_records(
            StreamName=stream,
            Records=[{"Data": t.to_record(), "PartitionKey": t.s} for t in trades[start:][:500]],
        )
        assert response["FailedRecordCount"] == 0


def shard_ids(kinesis: Any, stream: str) -> set[str]:
    return {s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]}


def eventually(condition: Callable[[], bool], within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- the embedded stack ----------------------------------------------------------------------


@pytest.fixture
def stack(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedStack]:
    with embedded_lake_stack("rtm", unique, monkeypatch) as running:
        yield running


def test_the_scrape_is_the_emulations_counts_and_lag_falls_to_zero(stack: EmbeddedStack) -> None:
    # GIVEN the embedded stack serving its runtime metrics
    assert stack.mapping is not None
    assert stack.firehose is not None
    kinesis = aws.client("kinesis")
    stream = stack.stack.stream_name
    with start_metrics(stack) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.url.endswith("/metrics")
        # WHEN 600 trades are put and both stages have caught up
        put_trades(kinesis, stream, some_trades(600))
        assert stack.mapping.wait_caught_up(WAIT_S)
        assert stack.firehose.wait_caught_up(WAIT_S, flush=True)
        scraped = scrape(server.url)
        hotstore, lake = stack.mapping.stats, stack.firehose.stats
        lag = stage_lag(stack)
    # THEN the hotstore's counters are the mapping's
    assert value(scraped, "runtime_records_delivered_total", stage="hotstore") == (
        hotstore.records_delivered
    )
    assert (
        value(scraped, "runtime_records_succeeded_total", stage="hotstore")
        == (hotstore.records_succeeded)
        == 600
    )
    assert value(scraped, "runtime_invocations_total", stage="hotstore") == hotstore.invocations
    assert value(scraped, "runtime_function_errors_total", stage="hotstore") == 0
    assert value(scraped, "runtime_batch_item_failures_total") == hotstore.batch_item_failures == 0
    assert value(scraped, "runtime_on_failure_sent_total") == hotstore.on_failure_sent == 0
    # AND the lake's are the Firehose emulation's: every record transformed, the distinct ones
    # in S3 (the enrich function drops the source's duplicates)
    assert value(scraped, "runtime_lake_records_read_total") == lake.records_in == 600
    invoked = value(scraped, "runtime_records_delivered_total", stage="lake")
    assert invoked == lake.records_invoked == 600
    in_s3 = value(scraped, "runtime_records_succeeded_total", stage="lake")
    assert in_s3 == lake.records_delivered == lake.ok
    dropped = value(scraped, "runtime_lake_records_dropped_total")
    assert dropped == lake.dropped
    assert in_s3 + dropped == 600
    assert value(scraped, "runtime_lake_processing_failed_total") == lake.processing_failed == 0
    assert value(scraped, "runtime_lake_objects_written_total") == lake.objects_written > 0
    assert value(scraped, "runtime_lake_bytes_written_total") == lake.bytes_written > 0
    # AND every shard has an iterator age per stage, 0 now that both are caught up
    shards = shard_ids(kinesis, stream)
    assert len(shards) == 2
    for stage in ("hotstore", "lake"):
        assert by_shard(scraped, "runtime_iterator_age_milliseconds", stage) == dict.fromkeys(
            shards, 0
        )
        assert set(by_shard(scraped, "runtime_millis_behind_latest", stage)) == shards
        assert value(scraped, "runtime_stage_running", stage=stage) == 1
    assert lag == {"hotstore": dict.fromkeys(shards, 0), "lake": dict.fromkeys(shards, 0)}
    # AND the endpoint is gone once stopped
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url)


def test_stages_that_do_not_run_have_no_samples(aws_env: str, unique: str) -> None:
    # GIVEN no stage running WHEN the metrics are scraped THEN there are no stage samples
    with start_metrics(Stages()) as server:
        scraped = scrape(server.url)
    assert not [name for name, labels in scraped if labels]
    assert stage_lag(Stages()) == {"hotstore": {}, "lake": {}}


# --- a stage that falls behind -----------------------------------------------------------------


class Gate:
    """A handler that does not return until opened, the way a stuck function holds a shard."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        self.entered.set()
        assert self.opened.wait(WAIT_S)


def test_a_stuck_hotstore_function_shows_a_growing_iterator_age(aws_env: str, unique: str) -> None:
    # GIVEN a mapping whose function does not return, serving its metrics
    deployed = deploy(stream_name=f"rtm-stuck-{unique}", table_name=f"rtm_stuck_{unique}")
    gate = Gate()
    mapping = KinesisEventSourceMapping(
        stream_arn=deployed.stream_arn,
        function_name="hotstore",
        handler=gate,
        settings=replace(deployed.mapping, maximum_batching_window_s=0),
        region=deployed.region,
        poll_interval_s=0.02,
    )
    mapping.start()
    kinesis = aws.client("kinesis")
    try:
        with start_metrics(Stages(mapping=mapping)) as server:
            # WHEN records arrive and the function is invoked on them but does not finish
            put_trades(kinesis, deployed.stream_name, some_trades(20))
            assert gate.entered.wait(WAIT_S)
            time.sleep(0.3)
            first = by_shard(scrape(server.url), "runtime_iterator_age_milliseconds", "hotstore")
            time.sleep(0.3)
            second = by_shard(scrape(server.url), "runtime_iterator_age_milliseconds", "hotstore")
            # THEN the shard it holds shows an age that keeps growing
            stuck = max(first, key=lambda shard: first[shard])
            assert first[stuck] >= 300
            assert second[stuck] >= first[stuck] + 250
            # AND once the function returns, the mapping catches up and the age is 0 again
            gate.opened.set()
            assert mapping.wait_caught_up(WAIT_S)
            caught_up = by_shard(
                scrape(server.url), "runtime_iterator_age_milliseconds", "hotstore"
            )
        assert set(caught_up) == shard_ids(kinesis, deployed.stream_name)
        assert set(caught_up.values()) == {0}
    finally:
        gate.opened.set()
        assert mapping.stop(timeout=10)


def passthrough(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A transform answering Ok with every record unchanged, under the lake's partition keys."""
    records = []
    for record in event["records"]:
        trade = json.loads(base64.b64decode(record["data"]))
        keys = {"symbol": trade["s"], "date": "2024-06-20"}
        answer = {"recordId": record["recordId"], "result": "Ok", "data": record["data"]}
        records.append({**answer, "metadata": {"partitionKeys": keys}})
    return {"records": records}


def test_a_lake_held_by_backpressure_shows_a_growing_iterator_age(
    aws_env: str, unique: str
) -> None:
    # GIVEN the lake's delivery stream, whose processor buffer (the template's 60 s) is never
    # due by itself, with a 1-byte memory bound so that one read stops the reading
    stream = f"rtm-lake-{unique}"
    kinesis = create_stream(stream, shards=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    bucket = f"rtm-lake-{unique}"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        parameters={"StreamArn": stream_arn, "BucketName": bucket},
        outputs={"BucketName": bucket, "BucketArn": f"arn:aws:s3:::{bucket}"},
    )
    firehose = FirehoseEmulation(
        settings=delivery_stream_settings(template, resolver),
        handler=passthrough,
        region="us-east-1",
        kinesis=kinesis,
        s3=s3,
        poll_interval_s=0.02,
        max_buffered_bytes=1,
    )
    firehose.start()
    try:
        with start_metrics(Stages(firehose=firehose)) as server:
            # WHEN records are read and held, and more arrive behind them
            put_trades(kinesis, stream, some_trades(10))
            eventually(lambda: firehose.stats.records_in == 10)
            put_trades(kinesis, stream, some_trades(20)[10:])
            time.sleep(0.3)
            first = by_shard(scrape(server.url), "runtime_iterator_age_milliseconds", "lake")
            time.sleep(0.3)
            second = by_shard(scrape(server.url), "runtime_iterator_age_milliseconds", "lake")
            # THEN the shard's age grows while the emulation cannot read
            (shard,) = first
            assert first[shard] >= 300
            assert second[shard] >= first[shard] + 250
            assert firehose.stats.records_in == 10
            # AND once the buffer is delivered, the rest is read and the age is 0 again (each
            # read fills the 1-byte bound again: flush until nothing is left to read)
            eventually(lambda: firehose.flush() and firehose.caught_up())
            scraped = scrape(server.url)
        assert by_shard(scraped, "runtime_iterator_age_milliseconds", "lake") == {shard: 0}
        assert value(scraped, "runtime_records_succeeded_total", stage="lake") == 20
    finally:
        assert firehose.stop(timeout=10)
