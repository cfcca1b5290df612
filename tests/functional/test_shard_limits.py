"""AWS's per-shard write limits on the embedded Kinesis, over real HTTP: a moto server process of
its own with the limits on (the session's shared server runs without them), the producer's
publisher over aiobotocore, and the embedded stack's setting."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError

from producer.publisher import KinesisPublisher, PublisherStats
from producer.settings import ProducerSettings
from producer.sources.synthetic import SyntheticSource
from tests.support.kinesis import create_stream, read_stream
from tradestream import aws
from tradestream.limits import KiB, MiB
from tradestream.local.moto_server import MotoHandle, start_moto
from tradestream.local.runtime import embedded_stack
from tradestream.local.settings import LocalSettings
from tradestream.local.shard_limits import THROTTLED
from tradestream.retry import Backoff, RetryBudget
from tradestream.trade import RawTrade, Trade, stamp

# Hash keys inside the first and the second shard of a two-shard stream (moto, like AWS, splits
# the 128-bit key space evenly).
FIRST_SHARD_KEY = str(0)
SECOND_SHARD_KEY = str(2**127 + 1)


@pytest.fixture(scope="module")
def limited_moto() -> Iterator[MotoHandle]:
    handle = start_moto(shard_limits=True)
    yield handle
    handle.stop()


@pytest.fixture
def limited(aws_env: str, limited_moto: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every client built by tradestream.aws talks to the moto server enforcing the limits."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", limited_moto.url)
    return limited_moto.url


class Tally:
    """The publisher's client, counting each entry's answer: "ok" or its ErrorCode."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.answers: Counter[str] = Counter()

    async def put_records(
        self, *, StreamName: str, Records: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self._client.put_records(
            StreamName=StreamName, Records=Records
        )
        self.answers.update(entry.get("ErrorCode", "ok") for entry in answer["Records"])
        return answer


async def publish(stream: str, trades: list[Trade]) -> tuple[PublisherStats, Counter[str], float]:
    """Push ``trades`` through the producer's publisher as fast as it goes; its stats, every
    entry's answers and the seconds until the last one was acknowledged."""
    async with aws.aio_client("kinesis", config=aws.NO_SDK_RETRIES) as client:
        tally = Tally(client)
        # Short backoffs keep the test fast; the producer's own (0.1 s doubling to 5 s) get there
        # the same way, in more wall-clock time.
        publisher = KinesisPublisher(tally, stream, retry=RetryBudget(60, Backoff(0.02, 0.25)))
        started = time.monotonic()
        async with publisher:
            for trade in trades:
                await publisher.put(trade)
        return publisher.stats, tally.answers, time.monotonic() - started


async def synthetic_trades(count: int, seed: int = 13) -> list[Trade]:
    source = SyntheticSource(ProducerSettings().symbols, seed=seed, max_trades=count)
    return [trade async for frame in source for trade in frame]


def padded_trades(count: int, padding: int) -> list[Trade]:
    """``count`` distinct trades each carrying ``padding`` bytes of condition code."""
    raws = [
        RawTrade(s="AAPL", p=100.0 + i, v=1, t=1_700_000_000_000 + i, c=("x" * padding,))
        for i in range(count)
    ]
    return stamp(raws)


def ids_in(kinesis: Any, stream: str) -> Counter[str]:
    return Counter(json.loads(r["Data"])["id"] for r in read_stream(kinesis, stream))


def entries(count: int, hash_key: str, size: int = 10) -> list[dict[str, Any]]:
    return [
        {"Data": b"x" * size, "PartitionKey": f"k{i}", "ExplicitHashKey": hash_key}
        for i in range(count)
    ]


async def test_a_burst_into_one_shard_is_throttled_then_delivered_in_full(
    limited: str, unique: str
) -> None:
    # GIVEN a one-shard stream and 3,500 trades: three and a half seconds of the shard's
    # 1,000 records/s, a burst far above it for a producer that can push ~10,000 trades/s
    stream = f"limits-{unique}"
    kinesis = create_stream(stream, shards=1)
    trades = await synthetic_trades(3500)
    # WHEN the producer's publisher pushes them as fast as it can
    stats, answers, elapsed = await publish(stream, trades)
    # THEN entries were refused with AWS's throttling code, and each refusal was resent
    assert answers[THROTTLED] > 0
    assert set(answers) == {"ok", THROTTLED}
    assert stats.retried == answers[THROTTLED]
    # AND every trade arrived exactly once (a refused entry is not written), nothing failed
    assert ids_in(kinesis, stream) == Counter(t.id for t in trades)
    assert answers["ok"] == stats.published == len(trades)
    assert (stats.failed, stats.buffered) == (0, 0)
    # AND it took as long as the shard's limit says: one second of burst, then 1,000/s
    assert elapsed >= (len(trades) - 1000) / 1000 * 0.95
    print(f"trades={len(trades)} throttled={answers[THROTTLED]} seconds={elapsed:.2f}")


async def test_the_byte_limit_throttles_few_large_records(limited: str, unique: str) -> None:
    # GIVEN a one-shard stream and 24 trades of ~100 KiB each: 2.3 MiB in 24 records, far below
    # 1,000 records but more than two seconds of the shard's 1 MiB/s
    stream = f"limits-bytes-{unique}"
    kinesis = create_stream(stream, shards=1)
    trades = padded_trades(24, padding=100 * KiB)
    total = sum(len(t.to_record()) + len(t.s) for t in trades)
    assert 2.2 * MiB < total < 2.5 * MiB
    # WHEN the publisher pushes them
    stats, answers, elapsed = await publish(stream, trades)
    # THEN some were throttled and resent, and all arrived once
    assert answers[THROTTLED] > 0
    assert stats.retried == answers[THROTTLED]
    assert ids_in(kinesis, stream) == Counter(t.id for t in trades)
    assert (stats.failed, stats.published) == (0, len(trades))
    # AND it took as long as 1 MiB/s allows after the first second's worth
    assert elapsed >= (total - MiB) / MiB * 0.95


def drain(kinesis: Any, stream: str, hash_key: str) -> int:
    """Calls of 500 small records to one shard until the shard refuses some: it then has no
    budget left. Each call takes more than the shard gets back while it is in flight (500
    records against 1,000 a second), so a few calls do it; returns the records written."""
    written = 0
    for _ in range(20):
        answer = kinesis.put_records(StreamName=stream, Records=entries(500, hash_key))
        written += 500 - answer["FailedRecordCount"]
        if answer["FailedRecordCount"]:
            return written
    raise AssertionError("the shard never refused a record")


def test_a_throttled_shard_leaves_the_other_shards_of_the_stream_alone(
    limited: str, unique: str
) -> None:
    # GIVEN a two-shard stream whose first shard has just run out of budget
    stream = f"limits-two-{unique}"
    kinesis = create_stream(stream, shards=2)
    written = drain(kinesis, stream, FIRST_SHARD_KEY)
    assert written >= 1000  # an idle shard's burst, and what came back meanwhile
    # WHEN one call alternates entries for the first and the second shard
    records = [
        e
        for pair in zip(entries(250, FIRST_SHARD_KEY), entries(250, SECOND_SHARD_KEY), strict=True)
        for e in pair
    ]
    answer = kinesis.put_records(StreamName=stream, Records=records)
    # THEN every entry for the second shard is written, in its place in the answer
    second = answer["Records"][1::2]
    assert all(r.get("ShardId") == "shardId-000000000001" for r in second)
    # AND the first shard's entries are refused with AWS's code and message, and counted; those
    # that fit what came back since are the first ones (a refusal refuses the rest of the call)
    first = ["ErrorCode" in r for r in answer["Records"][0::2]]
    taken = first.index(True)
    assert first == [False] * taken + [True] * (250 - taken)
    assert taken < 250
    assert answer["FailedRecordCount"] == 250 - taken
    account = aws.client("sts").get_caller_identity()["Account"]
    assert {(r["ErrorCode"], r["ErrorMessage"]) for r in answer["Records"] if "ErrorCode" in r} == {
        (
            THROTTLED,
            f"Rate exceeded for shard shardId-000000000000 in stream {stream} "
            f"under account {account}.",
        )
    }
    # AND the stream holds exactly the written entries
    assert len(read_stream(kinesis, stream)) == written + taken + 250


def test_put_record_over_the_limit_is_refused_with_http_400(limited: str, unique: str) -> None:
    # GIVEN a one-shard stream
    stream = f"limits-single-{unique}"
    create_stream(stream, shards=1)
    # The SDK would retry a throttled call on its own; here every refusal must be seen.
    kinesis = aws.client("kinesis", config=aws.NO_SDK_RETRIES)
    # WHEN PutRecord calls of 900 KiB follow one another (each takes 900 KiB of the shard's 1 MiB a
    # second, more than comes back while it is in flight)
    written = 0
    refused = None
    for _ in range(20):
        try:
            kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"x" * (900 * KiB))
            written += 1
        except ClientError as exc:
            refused = exc.response
            break
    # THEN one is refused as a whole with HTTP 400 and AWS's throttling error
    assert refused is not None, "no PutRecord was refused"
    assert refused["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused["Error"]["Code"] == THROTTLED
    assert refused["Error"]["Message"].startswith("Rate exceeded for shard shardId-000000000000 in")
    # AND once the shard's budget has refilled (under a second for 900 KiB) it is taken
    deadline = time.monotonic() + 5
    codes = []
    while time.monotonic() < deadline:
        try:
            kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"y" * (900 * KiB))
            written += 1
            break
        except ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
            time.sleep(0.05)
    assert set(codes) <= {THROTTLED}
    # AND the stream holds exactly the records that were taken
    assert len(read_stream(kinesis, stream)) == written >= 2, "the shard's budget never refilled"


def test_without_the_limits_the_same_burst_is_taken_at_once(aws_env: str, unique: str) -> None:
    # GIVEN the session's moto server, started without the limits, and a one-shard stream
    stream = f"limits-off-{unique}"
    kinesis = create_stream(stream, shards=1)
    # WHEN 2,500 records go to the shard in five back-to-back calls
    failed = [
        kinesis.put_records(StreamName=stream, Records=entries(500, FIRST_SHARD_KEY))[
            "FailedRecordCount"
        ]
        for _ in range(5)
    ]
    # THEN nothing is refused
    assert failed == [0] * 5
    assert len(read_stream(kinesis, stream)) == 2500


@pytest.mark.parametrize("shard_limits", [True, False], ids=["default-on", "SHARD_LIMITS=false"])
def test_the_embedded_stack_enforces_the_limits_unless_switched_off(
    aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch, shard_limits: bool
) -> None:
    # GIVEN no endpoint configured, so the embedded stack starts its own moto server, and the
    # setting from the environment as a user would give it (or left at its default)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    if not shard_limits:
        monkeypatch.setenv("SHARD_LIMITS", "false")
    settings = LocalSettings(stream_name=f"limits-stack-{unique}")
    assert settings.shard_limits is shard_limits
    with embedded_stack(settings, run_mapping=False, with_lake=False) as stack:
        kinesis = aws.client("kinesis")
        # WHEN 2,500 records go to one shard of its stream in five back-to-back calls
        failed = sum(
            kinesis.put_records(
                StreamName=stack.stack.stream_name, Records=entries(500, FIRST_SHARD_KEY)
            )["FailedRecordCount"]
            for _ in range(5)
        )
    # THEN with the limits on some of the burst is refused (more than the shard's 1,000 a
    # second arrives within well under a second); off, nothing is
    assert (failed > 0) is shard_limits


def test_a_record_above_1_mib_gets_awss_own_error_not_a_throttle(limited: str, unique: str) -> None:
    # GIVEN a call holding one record above Kinesis' 1 MiB record limit
    stream = f"toolarge-{unique}"
    kinesis = create_stream(stream, shards=1)
    too_big = {"Data": b"x" * (1024 * 1024 + 1), "PartitionKey": "AAPL"}
    # WHEN it is put through the limits
    with pytest.raises(ClientError) as refused:
        kinesis.put_records(StreamName=stream, Records=[too_big])
    # THEN it is refused as AWS refuses it (no resend can heal it), not throttled
    code = refused.value.response["Error"]["Code"]
    assert code != "ProvisionedThroughputExceededException"
    assert code in {"ValidationException", "InvalidArgumentException"}
