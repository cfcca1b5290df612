"""The Firehose emulation over real HTTP: moto server for Kinesis and S3, the real enrich handler
in-process, and a fake SageMaker runtime endpoint on loopback for the model.

Each test creates its own stream and bucket, runs the emulation with the lake template's delivery
stream settings, and checks the S3 keys and objects, the error envelopes and the counters.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.compose import wait_until
from tests.support.fake_sagemaker import MODEL_VERSION, FakeSageMaker, prediction_for
from tests.support.kinesis import create_stream
from tests.support.kpl import ours, theirs, trade_records
from tradestream import aws
from tradestream.cfn.template import TEMPLATE_DIR, load_template, resolver_for
from tradestream.local.firehose.delivery import FirehoseEmulation
from tradestream.local.firehose.settings import (
    DeliveryStreamSettings,
    ProcessorSettings,
    delivery_stream_settings,
)
from tradestream.local.lambda_runtime import function_arn, load_handler
from tradestream.local.leases import Leases, MemoryLeases
from tradestream.readback import count_lake, object_bodies
from tradestream.trade import RawTrade, Trade, stamp

WAIT_S = 30.0
ENRICH = "lambdas.enrich.handler.handler"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SUFFIX = rf"tradestream-lake-1-\d{{4}}-\d\d-\d\d-\d\d-\d\d-\d\d-{UUID}"
DATA_KEY = re.compile(rf"^trades/symbol=([^/]+)/date=(\d{{4}}-\d\d-\d\d)/{SUFFIX}\.gz$")
ERROR_KEY = re.compile(rf"^errors/processing-failed/\d{{4}}/\d\d/\d\d/{SUFFIX}\.gz$")
Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class Lake:
    stream_name: str
    stream_arn: str
    bucket: str
    settings: DeliveryStreamSettings
    kinesis: Any
    s3: Any


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSageMaker]:
    with FakeSageMaker() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fake.url)
        monkeypatch.setenv("ENDPOINT_NAME", "tradestream-model")
        monkeypatch.setenv("ON_INFERENCE_FAILURE", "deliver_null")
        # Fast failures: two 0.5 s attempts at most per chunk.
        monkeypatch.setenv("MAX_INVOKE_ATTEMPTS", "2")
        monkeypatch.setenv("READ_TIMEOUT_SECONDS", "2")
        monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0.01")
        monkeypatch.setenv("BACKOFF_MAX_SECONDS", "0.02")
        yield fake


@pytest.fixture
def lake(aws_env: str, unique: str) -> Lake:
    stream_name = f"lake-src-{unique}"
    kinesis = create_stream(stream_name, shards=2)
    stream_arn = kinesis.describe_stream_summary(StreamName=stream_name)[
        "StreamDescriptionSummary"
    ]["StreamARN"]
    bucket = f"lake-{unique}"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        # The processor waits for its size or a flush, never for its interval, in these tests.
        parameters={"StreamArn": stream_arn, "BucketName": bucket},
        outputs={"BucketName": bucket, "BucketArn": f"arn:aws:s3:::{bucket}"},
    )
    settings = delivery_stream_settings(template, resolver)
    return Lake(stream_name, stream_arn, bucket, settings, kinesis, s3)


@dataclass
class Recorder:
    """Wraps a handler: records each event and response, and checks every recordId is answered."""

    inner: Handler
    events: list[dict[str, Any]] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        response = self.inner(event, context)
        with self.lock:
            self.events.append(event)
            self.responses.append(response)
        return response

    def unanswered(self) -> list[str]:
        """recordIds of any event not answered exactly once, in order."""
        wrong = []
        for event, response in zip(self.events, self.responses, strict=True):
            sent = [r["recordId"] for r in event["records"]]
            answered = [r["recordId"] for r in (response or {}).get("records", [])]
            if answered != sent:
                wrong.extend(sorted(set(sent) ^ set(answered)) or sent)
        return wrong


@contextmanager
def running(
    lake: Lake,
    handler: Handler | None,
    *,
    starting_position: str = "TRIM_HORIZON",
    retry_delay_s: float = 0.01,
    leases: Leases | None = None,
    s3: Any = None,
    **changes: Any,
) -> Iterator[FirehoseEmulation]:
    emulation = FirehoseEmulation(
        settings=replace(lake.settings, **changes),
        handler=handler,
        region="us-east-1",
        function_name="tradestream-enrich",
        kinesis=lake.kinesis,
        s3=s3 or lake.s3,
        leases=leases,
        starting_position=starting_position,  # type: ignore[arg-type]
        poll_interval_s=0.02,
        retry_delay_s=retry_delay_s,
    )
    emulation.start()
    try:
        yield emulation
    finally:
        assert emulation.stop(timeout=10)


def trades(
    count: int, symbols: tuple[str, ...] = ("AAPL", "MSFT", "BINANCE:BTCUSDT")
) -> list[Trade]:
    day = 86_400_000
    raws = [
        # Two trade dates, a day apart, so partitions differ by date too.
        RawTrade(
            s=symbols[i % len(symbols)],
            p=100 + i / 100,
            v=i + 1,
            t=1_718_900_000_000 + (i % 2) * day,
        )
        for i in range(count)
    ]
    return stamp(raws, received_ms=1_718_990_000_000)


def put(lake: Lake, payloads: list[tuple[bytes, str]]) -> list[tuple[str, str]]:
    """Put the records; (shard id, sequence number) of each."""
    placed = []
    for start in range(0, len(payloads), 500):
        chunk = payloads[start : start + 500]
        response = lake.kinesis.put_records(
            StreamName=lake.stream_name,
            Records=[{"Data": data, "PartitionKey": key} for data, key in chunk],
        )
        assert response["FailedRecordCount"] == 0
        placed += [(r["ShardId"], r["SequenceNumber"]) for r in response["Records"]]
    return placed


def put_trades(lake: Lake, batch: list[Trade]) -> None:
    put(lake, [(t.to_record(), t.s) for t in batch])


def keys(lake: Lake, prefix: str = "") -> list[str]:
    listed = lake.s3.list_objects_v2(Bucket=lake.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def lines_by_key(lake: Lake, prefix: str) -> dict[str, list[dict[str, Any]]]:
    return {
        key: [json.loads(line) for line in body.splitlines()]
        for key, body in object_bodies(lake.bucket, prefix, lake.s3)
    }


def enrich() -> Recorder:
    return Recorder(load_handler(ENRICH))


# --- the lake's keys and contents ----------------------------------------------------------------


def test_output_keys_match_the_configured_prefixes_and_every_trade_is_enriched(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN 300 trades of three symbols over two dates, and a healthy model
    batch = trades(300)
    put_trades(lake, batch)
    handler = enrich()

    # WHEN the delivery stream runs until everything is in S3
    with running(lake, handler) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)
        stats = emulation.stats

    # THEN every data key is trades/symbol=<escaped symbol>/date=<date>/<Firehose name>.gz
    objects = lines_by_key(lake, "trades/")
    assert all(DATA_KEY.match(key) for key in objects), list(objects)
    partitions = {DATA_KEY.match(key).groups() for key in objects}  # type: ignore[union-attr]
    assert partitions == {
        (symbol, date)
        for symbol in ("AAPL", "MSFT", "BINANCE%3ABTCUSDT")
        for date in ("2024-06-20", "2024-06-21")
    }
    # AND each object holds only its partition's trades, each with its own prediction
    by_id = {t.id: t for t in batch}
    seen = []
    for key, lines in objects.items():
        symbol, date = DATA_KEY.match(key).groups()  # type: ignore[union-attr]
        for line in lines:
            trade = by_id[line["id"]]
            assert line["s"] == trade.s
            assert symbol == trade.s.replace(":", "%3A")
            assert date == datetime.fromtimestamp(trade.t / 1000, UTC).strftime("%Y-%m-%d")
            assert line["prediction"] == prediction_for(json.loads(trade.to_record()))
            assert line["model_version"] == MODEL_VERSION
            seen.append(line["id"])
    assert sorted(seen) == sorted(by_id)
    # AND every recordId of every invocation was answered, and nothing went to errors
    assert handler.unanswered() == []
    assert keys(lake, "errors/") == []
    assert (stats.records_in, stats.ok, stats.records_delivered, stats.error_records) == (
        300,
        300,
        300,
        0,
    )
    assert stats.objects_written == len(objects) == 6


def test_gzip_objects_decode_to_newline_delimited_json(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN 10 trades of one symbol and date
    put_trades(lake, trades(10, symbols=("AAPL",))[::2])

    # WHEN delivered with GZIP
    with running(lake, enrich()) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)

    # THEN the object is gzip, ends with .gz, and decodes to 5 JSON lines
    (key,) = keys(lake, "trades/")
    raw = lake.s3.get_object(Bucket=lake.bucket, Key=key)["Body"].read()
    assert key.endswith(".gz")
    assert raw[:2] == b"\x1f\x8b"
    text = gzip.decompress(raw)
    assert text.endswith(b"\n")
    assert len([json.loads(line) for line in text.splitlines()]) == 5


def test_uncompressed_objects_have_no_extension_and_plain_ndjson(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN CompressionFormat UNCOMPRESSED WHEN 4 trades are delivered
    put_trades(lake, trades(4, symbols=("MSFT",))[::2])
    with running(lake, enrich(), compression_format="UNCOMPRESSED") as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)

    # THEN the key has no extension and the body is the lines themselves
    (key,) = keys(lake, "trades/")
    assert re.match(rf"^trades/symbol=MSFT/date=2024-06-20/{SUFFIX}$", key)
    body = lake.s3.get_object(Bucket=lake.bucket, Key=key)["Body"].read()
    assert [json.loads(line)["s"] for line in body.splitlines()] == ["MSFT", "MSFT"]


# --- failures ------------------------------------------------------------------------------------


def test_a_malformed_record_goes_to_the_error_prefix_with_firehoses_envelope(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN two trades and a record that is not a trade, on one shard
    batch = trades(2, symbols=("AAPL",))
    put(
        lake,
        [(batch[0].to_record(), "AAPL"), (b"not a trade", "AAPL"), (batch[1].to_record(), "AAPL")],
    )
    handler = enrich()

    # WHEN delivered
    with running(lake, handler) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)
        stats = emulation.stats

    # THEN the bad record is under errors/processing-failed/yyyy/MM/dd/, in the envelope
    errors = lines_by_key(lake, "errors/")
    assert all(ERROR_KEY.match(key) for key in errors), list(errors)
    ((envelope,),) = errors.values()
    assert list(envelope) == [
        "attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
        "attemptEndingTimestamp", "rawData", "lambdaArn",
    ]  # fmt: skip
    assert base64.b64decode(envelope["rawData"]) == b"not a trade"
    assert envelope["errorCode"] == "Lambda.ProcessingFailedStatus"
    assert envelope["errorMessage"] == "ProcessingFailed status set for record"
    assert envelope["attemptsMade"] == 1
    assert envelope["lambdaArn"] == function_arn("us-east-1", "123456789012", "tradestream-enrich")
    sent = [r for e in handler.events for r in e["records"]]
    bad = next(r for r in sent if base64.b64decode(r["data"]) == b"not a trade")
    assert envelope["arrivalTimestamp"] == bad["approximateArrivalTimestamp"]
    assert envelope["attemptEndingTimestamp"] >= envelope["arrivalTimestamp"]
    # AND the two trades reached the lake, every recordId answered, and the counters agree
    assert count_lake(lake.bucket, s3=lake.s3).distinct_ids == 2
    assert handler.unanswered() == []
    assert (stats.ok, stats.processing_failed, stats.error_records) == (2, 1, 1)


def test_with_the_endpoint_down_trades_are_delivered_with_null_prediction_and_the_reason(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN a model endpoint that drops every connection, and 6 trades
    sagemaker.down = True
    put_trades(lake, trades(6))

    # WHEN delivered
    with running(lake, enrich()) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)

    # THEN all 6 are in the lake with prediction null and why; none under errors
    lines = [line for ls in lines_by_key(lake, "trades/").values() for line in ls]
    assert len(lines) == 6
    for line in lines:
        assert line["prediction"] is None
        assert line["model_version"] is None
        assert line["prediction_error"] == "ConnectionClosedError after 2 attempt(s)"
    assert keys(lake, "errors/") == []
    assert sagemaker.outcomes() == ["dropped", "dropped"]
    counts = count_lake(lake.bucket, s3=lake.s3)
    assert (counts.distinct_ids, counts.predicted, counts.errors) == (6, 0, 0)


def test_with_the_endpoint_unreachable_and_fail_mode_trades_go_to_the_error_prefix(
    lake: Lake, sagemaker: FakeSageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN ON_INFERENCE_FAILURE=fail and nothing listening where the endpoint should be
    monkeypatch.setenv("ON_INFERENCE_FAILURE", "fail")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:9")
    put_trades(lake, trades(3))

    # WHEN delivered
    with running(lake, enrich()) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)

    # THEN the 3 trades are error envelopes carrying their original data
    envelopes = [e for es in lines_by_key(lake, "errors/").values() for e in es]
    assert sorted(json.loads(base64.b64decode(e["rawData"]))["id"] for e in envelopes) == sorted(
        t.id for t in trades(3)
    )
    assert {e["errorCode"] for e in envelopes} == {"Lambda.ProcessingFailedStatus"}
    assert keys(lake, "trades/") == []


def test_throttling_followed_by_success_still_yields_predictions(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN an endpoint that throttles the first call, then answers; 5 trades on one shard
    sagemaker.throttle_next(1, status=429)
    put_trades(lake, trades(5, symbols=("AAPL",)))

    # WHEN delivered
    with running(lake, enrich()) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)

    # THEN every trade has its prediction, after one throttled call
    lines = [line for ls in lines_by_key(lake, "trades/").values() for line in ls]
    assert len(lines) == 5
    assert all(line["prediction"] is not None for line in lines)
    assert sagemaker.outcomes() == ["ThrottlingException", "ok"]


def test_an_invalid_response_fails_the_whole_batch_after_the_configured_retries(
    lake: Lake,
) -> None:
    # GIVEN a transform that never answers the last record, and NumberOfRetries 2
    def forgetful(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "records": [
                {"recordId": r["recordId"], "result": "Ok", "data": r["data"],
                 "metadata": {"partitionKeys": {"symbol": "S", "date": "D"}}}
                for r in event["records"][:-1]
            ]
        }  # fmt: skip

    handler = Recorder(forgetful)
    processor = replace(lake.settings.processor or ProcessorSettings(), number_of_retries=2)
    put(lake, [(b'{"n":1}', "k"), (b'{"n":2}', "k")])

    # WHEN delivered
    with running(lake, handler, processor=processor) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)
        stats = emulation.stats

    # THEN the batch was tried 3 times, then both records went to errors, none to the lake
    assert len(handler.events) == 3
    envelopes = [e for es in lines_by_key(lake, "errors/").values() for e in es]
    assert sorted(base64.b64decode(e["rawData"]) for e in envelopes) == [b'{"n":1}', b'{"n":2}']
    assert {(e["errorCode"], e["attemptsMade"]) for e in envelopes} == {
        ("Lambda.MissingRecordId", 3)
    }
    assert keys(lake, "trades/") == []
    assert (stats.invocations, stats.invocation_failures, stats.batch_failed_records) == (3, 3, 2)


def test_a_function_error_is_retried_after_the_retry_delay_and_a_later_success_delivers(
    lake: Lake,
) -> None:
    # GIVEN a transform that raises on its first invocation only, and a 0.3 s retry delay
    invoked_at: list[float] = []

    def flaky(event: dict[str, Any], context: Any) -> dict[str, Any]:
        invoked_at.append(time.monotonic())
        if len(invoked_at) == 1:
            raise RuntimeError("cold start failure")
        return {
            "records": [
                {"recordId": r["recordId"], "result": "Ok", "data": r["data"],
                 "metadata": {"partitionKeys": {"symbol": "S", "date": "D"}}}
                for r in event["records"]
            ]
        }  # fmt: skip

    put(lake, [(b'{"n":1}\n', "k")])

    # WHEN delivered
    with running(lake, Recorder(flaky), retry_delay_s=0.3) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)
        stats = emulation.stats

    # THEN the record reached its partition on the second attempt, made after the delay
    assert [k.split("/")[1:3] for k in keys(lake, "trades/")] == [["symbol=S", "date=D"]]
    assert (stats.invocations, stats.invocation_failures, stats.ok) == (2, 1, 1)
    assert invoked_at[1] - invoked_at[0] >= 0.3


def test_a_handler_that_always_raises_sends_the_batch_to_errors_as_function_errors(
    lake: Lake,
) -> None:
    # GIVEN a transform that always raises and NumberOfRetries 0
    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("broken")

    processor = replace(lake.settings.processor or ProcessorSettings(), number_of_retries=0)
    put(lake, [(b"x", "k")])

    # WHEN delivered THEN the record is an envelope with Lambda.FunctionError, one attempt
    with running(lake, broken, processor=processor) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)
    ((envelope,),) = lines_by_key(lake, "errors/").values()
    assert (envelope["errorCode"], envelope["attemptsMade"]) == ("Lambda.FunctionError", 1)


# --- buffering and positions ---------------------------------------------------------------------


def test_the_processor_buffer_size_splits_the_stream_into_invocations(lake: Lake) -> None:
    # GIVEN 1,000 records of exactly 500 bytes on one shard and a 0.2 MB processor buffer
    payloads = [(b"%05d" % i).ljust(500, b"x") for i in range(1000)]
    processor = replace(lake.settings.processor or ProcessorSettings(), buffer_size_bytes=209_715)

    def drop(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "records": [{"recordId": r["recordId"], "result": "Dropped"} for r in event["records"]]
        }

    handler = Recorder(drop)
    put(lake, [(p, "same-shard") for p in payloads])

    # WHEN delivered
    with running(lake, handler, processor=processor) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)
        stats = emulation.stats

    # THEN each invocation carried at most 419 records (209,715 // 500): 419 + 419 + 162
    sizes = [len(e["records"]) for e in handler.events]
    assert sizes == [419, 419, 162]
    assert (stats.invocations, stats.dropped, stats.objects_written) == (3, 1000, 0)


def test_latest_skips_what_was_put_before_start(lake: Lake, sagemaker: FakeSageMaker) -> None:
    # GIVEN trades put before the emulation starts at LATEST (Firehose's position)
    old, new = trades(4, symbols=("AAPL",))[:2], trades(4, symbols=("AAPL",))[2:]
    put_trades(lake, old)

    # WHEN two more are put after start
    with running(lake, enrich(), starting_position="LATEST") as emulation:
        put_trades(lake, new)
        assert emulation.wait_caught_up(WAIT_S, flush=True)

    # THEN only those reach the lake
    ids = sorted(line["id"] for ls in lines_by_key(lake, "trades/").values() for line in ls)
    assert ids == sorted(t.id for t in new)


def test_s3_buffering_hints_hold_objects_until_size_interval_or_flush(lake: Lake) -> None:
    # GIVEN no transform, no dynamic partitioning, and 1 MiB / 60 s S3 buffering hints
    settings = dict(
        processor=None,
        dynamic_partitioning=False,
        prefix="raw/",
        error_output_prefix=None,
        buffer_size_bytes=1024 * 1024,
        buffer_interval_s=60,
        compression_format="UNCOMPRESSED",
    )
    put(lake, [(b'{"small":1}\n', "k")] * 3)

    with running(lake, None, **settings) as emulation:  # type: ignore[arg-type]
        # WHEN the small records are read THEN they wait in the buffer
        assert not emulation.wait_caught_up(1.0)
        assert keys(lake, "raw/") == []
        # WHEN more than 1 MiB follows THEN an object is written without a flush
        put(lake, [(b"x" * 100_000, "k")] * 11)
        assert emulation.wait_caught_up(WAIT_S)
        first = keys(lake, "raw/")
        # AND the default time prefix raw/yyyy/MM/dd/HH/ is used
        assert len(first) == 1
        assert re.match(rf"^raw/\d{{4}}/\d\d/\d\d/\d\d/{SUFFIX}$", first[0])
        stats = emulation.stats
    assert (stats.records_in, stats.records_delivered, stats.objects_written) == (14, 14, 1)


def test_stop_delivers_what_is_still_buffered(lake: Lake) -> None:
    # GIVEN records held by a 60 s S3 interval
    put(lake, [(b'{"a":1}\n', "k")] * 2)
    held = replace(
        lake.settings,
        processor=None,
        dynamic_partitioning=False,
        prefix="raw/",
        error_output_prefix=None,
        buffer_size_bytes=1024 * 1024,
        buffer_interval_s=60,
    )
    emulation = FirehoseEmulation(
        settings=held,
        handler=None,
        region="us-east-1",
        kinesis=lake.kinesis,
        s3=lake.s3,
        starting_position="TRIM_HORIZON",
        poll_interval_s=0.02,
    )
    emulation.start()
    assert not emulation.wait_caught_up(0.5)

    # WHEN stopped
    assert emulation.stop(timeout=10)

    # THEN they were written, and no emulation thread is left
    assert len(keys(lake, "raw/")) == 1
    assert emulation.stats.records_delivered == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("firehose-") and t.is_alive()]


# --- reading the lake back -----------------------------------------------------------------------


def test_lake_counts_reconcile_duplicates_predictions_and_errors(lake: Lake) -> None:
    # GIVEN a gzip object with trades a, b (predicted) and c (null), a plain object repeating a,
    # and an error object with two envelopes
    def lines(*rows: dict[str, Any]) -> bytes:
        return b"".join(json.dumps(row).encode() + b"\n" for row in rows)

    a, b = {"id": "a", "prediction": 1.0}, {"id": "b", "prediction": 2.0}
    c = {"id": "c", "prediction": None}
    lake.s3.put_object(
        Bucket=lake.bucket, Key="trades/s=A/1.gz", Body=gzip.compress(lines(a, b, c))
    )
    lake.s3.put_object(Bucket=lake.bucket, Key="trades/s=A/2", Body=lines(a))
    lake.s3.put_object(
        Bucket=lake.bucket, Key="errors/processing-failed/1.gz", Body=gzip.compress(lines({}, {}))
    )

    # WHEN counted
    counts = count_lake(lake.bucket, s3=lake.s3)

    # THEN lines, distinct ids, predicted ids and errors are each counted once
    assert (counts.records, counts.distinct_ids, counts.predicted) == (4, 3, 2)
    assert (counts.errors, counts.objects, counts.error_objects) == (2, 2, 1)


def test_a_stream_deleted_under_the_emulation_is_said_once_and_not_retried(
    lake: Lake, sagemaker: FakeSageMaker, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a running emulation polling both shards every 20 ms
    with running(lake, enrich()) as emulation:
        assert emulation.wait_caught_up(10)

        # WHEN the stream is deleted under it
        with caplog.at_level(logging.WARNING):
            lake.kinesis.delete_stream(StreamARN=lake.stream_arn)
            deadline = time.monotonic() + 10
            while not any("no longer exists" in m for m in caplog.messages):
                assert time.monotonic() < deadline, caplog.messages
                time.sleep(0.02)
            time.sleep(1)  # some 50 polls per shard, each of which used to log a traceback

    # THEN it was said once, as an error naming the stream, without a traceback
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in said] == [logging.ERROR], caplog.messages
    assert lake.stream_arn in said[0].getMessage()
    assert said[0].exc_info is None


# --- KPL aggregates ------------------------------------------------------------------------------


def test_aggregated_records_are_deaggregated_and_every_trade_reaches_the_lake_once(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN 240 trades: 120 in 12 aggregates of ours, 60 in aggregates by aws-kinesis-agg (cut at
    # 2 KiB, so several), 60 as plain records, all on the stream
    batch = trades(240)
    records = trade_records(batch)
    kinesis = [ours(records[i : i + 10]) for i in range(0, 120, 10)]
    kinesis += theirs(records[120:180], max_bytes=2048)
    kinesis += records[180:]
    placed = put(lake, [(data, key) for key, data in kinesis])
    handler, leases = enrich(), MemoryLeases()

    # WHEN the delivery stream runs until everything is in S3
    with running(lake, handler, leases=leases) as emulation:
        assert emulation.wait_caught_up(WAIT_S, flush=True)
        stats = emulation.stats

    # THEN every trade is one line of the lake, predicted, nothing under the error prefix
    counts = count_lake(lake.bucket, s3=lake.s3)
    assert (counts.records, counts.distinct_ids, counts.predicted, counts.errors) == (
        240,
        240,
        240,
        0,
    )
    lines = [line for rows in lines_by_key(lake, "trades/").values() for line in rows]
    assert sorted(line["id"] for line in lines) == sorted(t.id for t in batch)
    # AND the transform saw one event record per trade, each recordId once over all events,
    # under the trade's own partition key, every one answered
    sent = [r for event in handler.events for r in event["records"]]
    assert len(sent) == len({r["recordId"] for r in sent}) == 240
    for record in sent:
        trade = json.loads(base64.b64decode(record["data"]))
        assert record["kinesisRecordMetadata"]["partitionKey"] == trade["s"]
    assert handler.unanswered() == []
    # AND Kinesis records and user records are counted apart
    assert (stats.records_in, stats.user_records_in) == (len(kinesis), 240)
    assert (stats.ok, stats.records_delivered) == (240, 240)
    # AND each shard's checkpoint is its last Kinesis record, aggregates included
    last = {shard: max(int(seq) for s, seq in placed if s == shard) for shard, _ in placed}
    assert {shard: int(seq) for shard, seq in leases.checkpoints.items()} == last


class _RefusingPartition:
    """S3 refusing objects under one partition until told otherwise."""

    def __init__(self, s3: Any, refused: str) -> None:
        self._s3 = s3
        self.refused: str | None = refused

    def put_object(self, **kwargs: Any) -> Any:
        if self.refused is not None and self.refused in kwargs["Key"]:
            raise RuntimeError(f"S3 refuses {self.refused}")
        return self._s3.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_the_checkpoint_moves_only_once_every_user_record_of_an_aggregate_is_in_s3(
    lake: Lake, sagemaker: FakeSageMaker
) -> None:
    # GIVEN one aggregate of an AAPL and an MSFT trade, S3 refusing the MSFT partition, and
    # buffers that are due at once
    aapl, msft = trades(2)
    ((shard, sequence),) = put(lake, [(ours(trade_records([aapl, msft]))[1], "AAPL")])
    s3, leases = _RefusingPartition(lake.s3, "symbol=MSFT/"), MemoryLeases()
    assert lake.settings.processor is not None
    due_at_once = {
        "processor": replace(lake.settings.processor, buffer_interval_s=0),
        "buffer_interval_s": 0,
    }

    with running(lake, enrich(), leases=leases, s3=s3, **due_at_once) as emulation:
        # WHEN the AAPL trade's object is written and the MSFT one's is refused
        assert wait_until(
            lambda: keys(lake, "trades/symbol=AAPL/") and emulation.stats.put_failures > 0,
            WAIT_S,
            interval_s=0.02,
        )
        # THEN nothing is checkpointed: the aggregate is not done while one record is not in S3
        assert leases.checkpoints == {}

        # WHEN S3 takes the MSFT partition too
        s3.refused = None
        assert emulation.wait_caught_up(WAIT_S, flush=True)

    # THEN the checkpoint is the aggregate, and each trade is in the lake once
    assert leases.checkpoints == {shard: sequence}
    lines = [line for rows in lines_by_key(lake, "trades/").values() for line in rows]
    assert sorted(line["id"] for line in lines) == sorted([aapl.id, msft.id])
