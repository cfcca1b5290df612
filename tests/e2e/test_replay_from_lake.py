"""`tradestream replay --from-lake`: the lake's trades back on the stream.

On the embedded stack (producer -> Kinesis -> hotstore -> DynamoDB, and Firehose -> enrich -> S3):
trades that reached the lake, deleted from DynamoDB, come back exactly; a second replay changes
nothing. On lakes written in the delivery stream's own layout (the template's Prefix evaluated
with the enrich function's partition keys and lines, Firehose's object names; gzip and plain),
replayed into a stream of their own: the symbol filter and the time window put exactly the
matching trades and never open the other partitions, invalid lines are reported with their
object key, duplicates collapse, and the recorded pace takes the recorded span (gaps capped).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lambdas.enrich.records import Prediction, lake_line, partition_keys
from producer.app import run
from producer.settings import ProducerSettings
from tests.functional.test_lake_query import DAY_MS, SYMBOLS
from tests.functional.test_lake_query import trades as synthetic
from tests.support.deaggregated import by_kpl, stream_trades
from tests.support.kinesis import create_stream, read_stream
from tests.support.stacks import Item, embedded_lake_stack, items, settle
from tradestream import aws, readback
from tradestream.cfn.template import TEMPLATE_DIR, load_template, resolver_for
from tradestream.cli.replay import replay_command
from tradestream.local.firehose.prefix import Context, object_name
from tradestream.local.firehose.settings import delivery_stream_settings
from tradestream.local.runtime import EmbeddedStack
from tradestream.trade import RawTrade, Trade, stamp


def replay(stream: str, bucket: str, *args: str) -> tuple[Result, dict[str, Any]]:
    """The command as `tradestream replay --from-lake ARGS` runs it, its summary parsed."""
    result = CliRunner().invoke(
        replay_command,
        ["--from-lake", *args],
        env={"STREAM_NAME": stream, "BUCKET_NAME": bucket, "DATA_PREFIX": None},
    )
    assert result.stdout.strip(), result.output
    return result, json.loads(result.stdout.strip().splitlines()[-1])


# --- the embedded stack ---------------------------------------------------------------------


@pytest.fixture
def stack(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedStack]:
    with embedded_lake_stack("replay", unique, monkeypatch) as running:
        yield running


def without(item: Item, *names: str) -> Item:
    return {name: value for name, value in item.items() if name not in names}


def receive_times(stream: str) -> dict[str, set[int]]:
    """Each trade id on the stream, with the receive times its records carried."""
    times: dict[str, set[int]] = {}
    for trade in stream_trades(aws.client("kinesis"), stream):
        times.setdefault(trade["id"], set()).add(trade["rt"])
    return times


def delete_all(table: str, keys: list[tuple[str, str]]) -> None:
    dynamodb = aws.client("dynamodb")
    for start in range(0, len(keys), 25):
        requests: dict[str, Any] = {
            table: [
                {"DeleteRequest": {"Key": {"s": {"S": s}, "sk": {"S": sk}}}}
                for s, sk in keys[start : start + 25]
            ]
        }
        while requests:
            requests = dynamodb.batch_write_item(RequestItems=requests)["UnprocessedItems"]


def test_trades_deleted_from_dynamodb_come_back_exactly_and_a_second_replay_changes_nothing(
    stack: EmbeddedStack,
) -> None:
    # GIVEN 600 synthetic trades through the whole pipeline: in DynamoDB and in the lake (gzip)
    table, stream = stack.stack.table_name, stack.stack.stream_name
    assert stack.lake is not None
    bucket = stack.lake.bucket_name
    produced = asyncio.run(
        run(ProducerSettings(stream_name=stream, max_trades=600, synthetic_seed=31))
    )
    settle(stack)
    before = items(table)
    assert len(before) == produced.distinct == 600
    # The synthetic source re-sends some trades, as Finnhub does: same id, a later receive time.
    sent = receive_times(stream)
    lake = readback.count_lake(bucket)
    assert lake.distinct_ids == 600
    s3 = aws.client("s3")
    first = s3.list_objects_v2(Bucket=bucket, Prefix="trades/")["Contents"][0]["Key"]
    raw = s3.get_object(Bucket=bucket, Key=first)["Body"].read()
    assert raw[:2] == b"\x1f\x8b"  # the delivery stream compresses (the template's default)

    # WHEN every item is deleted and the lake is replayed
    delete_all(table, list(before))
    assert readback.count_items(table) == 0
    replayed_at = int(time.time() * 1000)
    result, summary = replay(stream, bucket)
    settle(stack)

    # THEN the replay put every trade once, and DynamoDB holds the same items again: exactly, but
    # for the write time (ingested_at: the restore wrote them anew)
    assert result.exit_code == 0, result.output
    assert summary["complete"] is True
    assert summary["lines_read"] == lake.records
    assert summary["trades_put"] == summary["published"] == 600
    assert summary["objects_read"] == summary["objects_listed"] == lake.objects
    restored = items(table)
    assert restored.keys() == before.keys()
    once = [k for k, v in before.items() if len(sent[v["id"]["S"]]) == 1]
    assert len(once) > 500
    assert [without(restored[k], "ingested_at") for k in once] == [
        without(before[k], "ingested_at") for k in once
    ]
    assert min(int(v["ingested_at"]["N"]) for v in restored.values()) >= replayed_at
    # AND a trade the source sent twice comes back with one of its own receive times, the lake's
    # copy's (the hot store keeps the copy it wrote last, the lake the first), all else equal
    for key, item in restored.items():
        assert without(item, "ingested_at", "rt") == without(before[key], "ingested_at", "rt")
        assert int(item["rt"]["N"]) in sent[item["id"]["S"]]
    # AND the progress went to stderr
    assert "replay: objects" in result.stderr

    # WHEN it is replayed again, the lake now holding each trade twice (the first replay's copies)
    assert readback.count_lake(bucket).records == 2 * lake.records
    again_at = int(time.time() * 1000)
    result, summary = replay(stream, bucket)
    settle(stack)

    # THEN the copies collapsed, the same 600 trades went out, and the hotstore rewrote the same
    # 600 items: no item more, none changed but its write time
    assert result.exit_code == 0, result.output
    assert summary["duplicates"] == summary["lines_read"] - 600 == lake.records
    assert summary["trades_put"] == 600
    rewritten = items(table)
    assert {k: without(v, "ingested_at") for k, v in rewritten.items()} == {
        k: without(v, "ingested_at") for k, v in restored.items()
    }
    assert min(int(v["ingested_at"]["N"]) for v in rewritten.values()) >= again_at
    # AND the lake holds the same distinct trades, with one more copy each
    after = readback.count_lake(bucket)
    assert after.distinct_ids == 600
    assert after.records == 3 * lake.records


# --- lakes written in the delivery stream's layout -------------------------------------------


@dataclass
class Lake:
    bucket: str
    stream: str
    kinesis: Any
    keys: list[str]

    def put(self, trades: list[Trade], *, gzipped: bool = True, extra: bytes = b"") -> list[str]:
        """One object per partition, as the delivery stream writes them; ``extra`` lines are
        appended to each."""
        s3 = aws.client("s3")
        moment = datetime.now(UTC)
        groups: dict[str, list[bytes]] = {}
        for trade in trades:
            folder = _PREFIX.evaluate(Context(moment=moment, partition_keys=partition_keys(trade)))
            groups.setdefault(folder, []).append(lake_line(trade, Prediction(0.001, "m-1")))
        written = []
        for folder, lines in groups.items():
            key = folder + object_name("tradestream-lake", 1, moment, ".gz" if gzipped else "")
            data = b"".join(lines) + extra
            s3.put_object(
                Bucket=self.bucket, Key=key, Body=gzip.compress(data) if gzipped else data
            )
            written.append(key)
        self.keys += written
        return written

    def records_put(self) -> list[bytes]:
        """The trade records put on the stream, aggregated or not (the producer's default)."""
        return [data for _, data in by_kpl(read_stream(self.kinesis, self.stream))]


def _template_prefix() -> Any:
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        parameters={
            "StreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/t",
            "BucketName": "b",
        },
        outputs={"BucketName": "b", "BucketArn": "arn:aws:s3:::b"},
    )
    return delivery_stream_settings(template, resolver).prefixes().data


_PREFIX = _template_prefix()


@pytest.fixture
def lake(aws_env: str, unique: str) -> Lake:
    bucket, stream = f"replay-w-{unique}", f"replay-w-{unique}"
    aws.client("s3").create_bucket(Bucket=bucket)
    # One shard: its records read back in the order they were put.
    return Lake(bucket, stream, create_stream(stream, shards=1), [])


def test_a_symbol_and_a_time_window_put_only_their_trades_and_skip_other_partitions(
    lake: Lake,
) -> None:
    # GIVEN two days of three symbols (day one gzip, day two plain), and an object no reader
    # could read in every MSFT partition
    day_one, day_two = synthetic(900, seed=3), synthetic(300, seed=4, shift_ms=DAY_MS)
    lake.put(day_one)
    lake.put(day_two, gzipped=False)
    s3 = aws.client("s3")
    for key in [k for k in lake.keys if "symbol=MSFT/" in k]:
        s3.put_object(Bucket=lake.bucket, Key=key + "-broken.gz", Body=b"\x1f\x8bnot gzip")
    btc = sorted((t for t in day_one if t.s == "BINANCE:BTCUSDT"), key=lambda t: t.t)
    start, end = btc[10].t, btc[-10].t
    expected = [t for t in day_one + day_two if t.s == "BINANCE:BTCUSDT" and start <= t.t <= end]

    # WHEN one symbol's trades are replayed within a window given as ISO 8601 and epoch ms
    iso_start = datetime.fromtimestamp(start / 1000, UTC).isoformat(timespec="milliseconds")
    result, summary = replay(
        lake.stream,
        lake.bucket,
        "--symbol",
        "BINANCE:BTCUSDT",
        "--from",
        iso_start.replace("+00:00", "Z"),
        "--to",
        str(end),
    )

    # THEN exactly its trades in the window are on the stream, as the stream's records
    assert result.exit_code == 0, result.output
    assert sorted(lake.records_put()) == sorted(t.to_record() for t in expected)
    assert summary["trades_put"] == len(expected) > 0
    # AND only that symbol's day-one object was read: other symbols and the next day were skipped
    # unlisted (the broken MSFT objects were never opened)
    assert summary["objects_read"] == summary["objects_listed"] == 1
    assert summary["unreadable_objects"] == {}
    assert summary["partitions_pruned"] == 2 + 1  # AAPL, MSFT; day two of BINANCE
    in_object = sum(1 for t in day_one if t.s == "BINANCE:BTCUSDT")
    assert summary["lines_read"] == in_object
    assert summary["skipped_by_filter"] == in_object - len(expected)


def test_gzip_plain_duplicates_and_invalid_lines_are_read_counted_and_reported(
    lake: Lake,
) -> None:
    # GIVEN gzip objects, plain ones, a redelivered object, and one object with two bad lines
    trades = synthetic(400, seed=5)
    lake.put(trades[:300])
    lake.put(trades[300:], gzipped=False, extra=b'not json\n{"s":"AAPL","p":1.5,"v":1,"t":0}\n\n')
    redelivered = lake.put(trades[:40])
    bad = [k for k in lake.keys if not k.endswith(".gz")]

    # WHEN the whole lake is replayed
    result, summary = replay(lake.stream, lake.bucket)

    # THEN every distinct trade went out once, as the stream's record (no inference fields)
    assert sorted(lake.records_put()) == sorted(t.to_record() for t in trades)
    assert summary["trades_put"] == summary["published"] == 400
    assert summary["duplicates"] == 40
    assert summary["objects_read"] == len(lake.keys) == 3 + 3 + len(redelivered)
    # AND the bad lines are counted by object and quoted with their key, line and reason
    assert summary["invalid_lines"] == 2 * len(bad)
    assert summary["invalid_by_object"] == dict.fromkeys(bad, 2)
    reasons = {(e["key"], e["line"]): e["reason"] for e in summary["invalid_examples"]}
    assert len(reasons) == 2 * len(bad)
    assert any("id" in r for r in reasons.values())
    # AND every line is accounted for: put, duplicate or invalid
    assert summary["lines_read"] == 400 + 40 + 2 * len(bad)
    # AND the run says it is incomplete: those lines are not on the stream
    assert result.exit_code == 1
    assert summary["complete"] is False
    assert "invalid lines" in result.stderr


def test_recorded_pace_takes_the_recorded_span_with_long_gaps_capped(lake: Lake) -> None:
    # GIVEN two symbols' trades over 1.5 s (in two partitions), and one trade an hour later
    t0 = 1_704_205_800_000
    raws = [(SYMBOLS[i % 2], t0 + i * 100) for i in range(16)] + [("AAPL", t0 + 3_600_000)]
    trades = [stamp([RawTrade(s=s, p=10.0, v=1.0, t=t)], received_ms=t)[0] for s, t in raws]
    lake.put(trades)

    # WHEN replayed at recorded pace, gaps capped at 0.3 s
    result, summary = replay(lake.stream, lake.bucket, "--pace", "recorded", "--max-gap", "0.3")

    # THEN it took the 1.5 s span plus the capped gap, and put every trade
    assert result.exit_code == 0, result.output
    assert summary["trades_put"] == 17
    assert summary["max_gap_s"] == 0.3
    assert 1.5 + 0.3 <= summary["elapsed_s"] < 1.8 + 1.5
    # AND in trade-time order across the two symbols' partitions
    assert [json.loads(record)["t"] for record in lake.records_put()] == [t for _, t in raws]


def test_a_lake_that_is_not_there_is_an_error_that_says_what_to_set(lake: Lake) -> None:
    # WHEN the bucket named does not exist
    result, summary = replay(lake.stream, "no-such-lake-bucket")
    # THEN the command fails with what to set, and nothing was put
    assert result.exit_code == 1
    assert "BUCKET_NAME" in result.stderr
    assert summary["trades_put"] == 0
    assert lake.records_put() == []
