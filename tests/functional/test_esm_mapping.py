"""The Kinesis event source mapping emulation against the locally deployed stack, over real HTTP.

Each test deploys its own copy of the stacks, runs the mapping with a recording handler and
checks what the handler received, what went to the on-failure destination and the counters.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from tests.support.kpl import theirs
from tradestream import aws
from tradestream.local.esm.mapping import KinesisEventSourceMapping
from tradestream.local.hot_path import DeployedStack, deploy

POLL_S = 0.02
WAIT_S = 20.0
RECORD_KEYS = {
    "kinesis",
    "eventSource",
    "eventVersion",
    "eventID",
    "eventName",
    "invokeIdentityArn",
    "awsRegion",
    "eventSourceARN",
}
KINESIS_KEYS = {
    "kinesisSchemaVersion",
    "partitionKey",
    "sequenceNumber",
    "data",
    "approximateArrivalTimestamp",
}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

Behaviour = Callable[[list[bytes], list[str], int], Any]


@dataclass
class Recorder:
    """A handler that records every invocation and answers with ``behaviour``."""

    behaviour: Behaviour | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    remaining_ms: list[int] = field(default_factory=list)
    invoked_at: list[float] = field(default_factory=list)  # time.monotonic()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self.lock:
            self.events.append(event)
            self.contexts.append(context)
            self.remaining_ms.append(context.get_remaining_time_in_millis())
            self.invoked_at.append(time.monotonic())
            call = len(self.events)
        data = [base64.b64decode(r["kinesis"]["data"]) for r in event["Records"]]
        seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        return self.behaviour(data, seqs, call) if self.behaviour else None

    def batches(self) -> list[list[bytes]]:
        with self.lock:
            return [
                [base64.b64decode(r["kinesis"]["data"]) for r in e["Records"]] for e in self.events
            ]


class Clock:
    """``time.time`` plus an offset the test moves, to age records without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def stack(aws_env: str, unique: str) -> DeployedStack:
    return deploy(stream_name=f"trades-{unique}", table_name=f"stock_trades-{unique}")


@contextmanager
def running(
    stack: DeployedStack,
    handler: Recorder,
    *,
    clock: Callable[[], float] = time.time,
    shard_refresh_s: float = 10.0,
    **settings: Any,
) -> Iterator[KinesisEventSourceMapping]:
    # Deterministic batches: no batching window unless a test asks for one.
    mapping_settings = replace(stack.mapping, **{"maximum_batching_window_s": 0, **settings})
    mapping = KinesisEventSourceMapping(
        stream_arn=stack.stream_arn,
        function_name="hotstore",
        handler=handler,
        settings=mapping_settings,
        region=stack.region,
        poll_interval_s=POLL_S,
        clock=clock,
        shard_refresh_s=shard_refresh_s,
    )
    mapping.start()
    try:
        yield mapping
    finally:
        assert mapping.stop(timeout=5)


def client(service: str) -> Any:
    # Building a client costs ~0.1 s; reuse one per service and endpoint.
    return _client(service, os.environ["AWS_ENDPOINT_URL"])


@functools.cache
def _client(service: str, endpoint: str) -> Any:
    return aws.client(service, endpoint_url=endpoint)


def shard_hash_keys(stack: DeployedStack) -> list[str]:
    shards = client("kinesis").list_shards(StreamARN=stack.stream_arn)["Shards"]
    return [s["HashKeyRange"]["StartingHashKey"] for s in shards]


def put(stack: DeployedStack, payloads: list[bytes], shard: int = 0) -> list[str]:
    """Put records onto one shard, in order; return their sequence numbers."""
    hash_key = shard_hash_keys(stack)[shard]
    response = client("kinesis").put_records(
        StreamARN=stack.stream_arn,
        Records=[
            {"Data": p, "PartitionKey": "AAPL", "ExplicitHashKey": hash_key} for p in payloads
        ],
    )
    assert response["FailedRecordCount"] == 0
    return [r["SequenceNumber"] for r in response["Records"]]


def dlq_messages(
    stack: DeployedStack, expected: int, timeout: float = WAIT_S
) -> list[dict[str, Any]]:
    sqs = client("sqs")
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < expected and time.monotonic() < deadline:
        received = sqs.receive_message(QueueUrl=stack.dlq_url, MaxNumberOfMessages=10)
        bodies += [json.loads(m["Body"]) for m in received.get("Messages", [])]
    # Nothing more arrives: the expected count is exact.
    time.sleep(3 * POLL_S)
    bodies += [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=stack.dlq_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
    ]
    return bodies


def fail_when(poison: bytes) -> Behaviour:
    def behaviour(data: list[bytes], seqs: list[str], call: int) -> Any:
        if poison in data:
            raise RuntimeError("poison record")
        return None

    return behaviour


# --- delivery ------------------------------------------------------------------------------------


def test_every_record_is_delivered_once_in_order_per_shard_in_batches_of_batch_size(
    stack: DeployedStack,
) -> None:
    # GIVEN 23 records on shard 0 and 17 on shard 1
    put0 = put(stack, [f"a{i}".encode() for i in range(23)], shard=0)
    put1 = put(stack, [f"b{i}".encode() for i in range(17)], shard=1)
    handler = Recorder()

    # WHEN the mapping runs with BatchSize 5 until it has caught up
    with running(stack, handler, batch_size=5) as mapping:
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats
        checkpoints = mapping.checkpoints()

    # THEN every batch holds at most 5 records of a single shard
    shard_ids = [r["eventID"].split(":")[0] for e in handler.events for r in e["Records"]]
    per_batch = [{r["eventID"].split(":")[0] for r in e["Records"]} for e in handler.events]
    assert all(len(e["Records"]) <= 5 for e in handler.events)
    assert all(len(shards) == 1 for shards in per_batch)
    # AND each shard's records arrive exactly once, in sequence order
    delivered: dict[str, list[str]] = {}
    records = [r for e in handler.events for r in e["Records"]]
    for shard_id, event in zip(shard_ids, records, strict=True):
        delivered.setdefault(shard_id, []).append(event["kinesis"]["sequenceNumber"])
    assert sorted(delivered.values()) == sorted([put0, put1])
    assert sorted(len(e["Records"]) for e in handler.events) == sorted(
        [5] * 4 + [3] + [5] * 3 + [2]
    )
    # AND the counters and checkpoints agree
    assert (stats.invocations, stats.records_delivered, stats.records_succeeded) == (9, 40, 40)
    assert (stats.function_errors, stats.on_failure_sent, stats.bisections) == (0, 0, 0)
    assert sorted(c for c in checkpoints.values() if c) == sorted([put0[-1], put1[-1]])


def test_aggregated_records_are_delivered_as_they_are_as_lambda_does(
    stack: DeployedStack,
) -> None:
    # GIVEN a KPL aggregate of three user records (made by aws-kinesis-agg) between two plain
    # records on one shard
    users = [("AAPL", b'{"n":0}'), ("MSFT", b'{"n":1}'), ("AAPL", b'{"n":2}')]
    ((_, aggregate),) = theirs(users)
    sequences = put(stack, [b"plain-1", aggregate, b"plain-2"])
    handler = Recorder()

    # WHEN the mapping delivers them
    with running(stack, handler) as mapping:
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats

    # THEN the function gets three Kinesis records: the aggregate whole, its bytes untouched,
    # under its own sequence number (opening it is the function's job, as on Lambda)
    records = [r["kinesis"] for e in handler.events for r in e["Records"]]
    assert [base64.b64decode(r["data"]) for r in records] == [b"plain-1", aggregate, b"plain-2"]
    assert [r["sequenceNumber"] for r in records] == sequences
    assert all(set(r) == KINESIS_KEYS for r in records)  # no sub-sequence number added
    assert stats.records_delivered == 3


def test_the_event_and_context_have_lambdas_exact_shape(stack: DeployedStack) -> None:
    # GIVEN one record
    before = time.time()
    (sequence,) = put(stack, [b'{"s":"AAPL"}'])
    handler = Recorder()

    # WHEN it is delivered
    with running(stack, handler) as mapping:
        assert mapping.wait_caught_up(WAIT_S)

    # THEN the event is AWS's Kinesis event, key for key
    (event,) = handler.events
    assert set(event) == {"Records"}
    (record,) = event["Records"]
    assert set(record) == RECORD_KEYS
    assert set(record["kinesis"]) == KINESIS_KEYS
    shard_id = client("kinesis").list_shards(StreamARN=stack.stream_arn)["Shards"][0]["ShardId"]
    assert record["kinesis"]["kinesisSchemaVersion"] == "1.0"
    assert record["kinesis"]["partitionKey"] == "AAPL"
    assert record["kinesis"]["sequenceNumber"] == sequence
    assert base64.b64decode(record["kinesis"]["data"]) == b'{"s":"AAPL"}'
    arrival = record["kinesis"]["approximateArrivalTimestamp"]
    assert isinstance(arrival, float)
    assert before - 1 <= arrival <= time.time() + 1
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventVersion"] == "1.0"
    assert record["eventID"] == f"{shard_id}:{sequence}"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["invokeIdentityArn"] == "arn:aws:iam::123456789012:role/hotstore"
    assert record["awsRegion"] == "us-east-1"
    assert record["eventSourceARN"] == stack.stream_arn
    # AND the context is a Lambda context
    (context,) = handler.contexts
    assert context.function_name == "hotstore"
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:hotstore"
    assert context.function_version == "$LATEST"
    assert context.log_group_name == "/aws/lambda/hotstore"
    assert context.memory_limit_in_mb == 256
    assert re.fullmatch(r"[0-9a-f-]{36}", context.aws_request_id)
    assert 0 < handler.remaining_ms[0] <= 60_000


def test_the_batching_window_gathers_records_before_invoking(stack: DeployedStack) -> None:
    # GIVEN three records and a 0.5 s batching window with room for 100 records
    put(stack, [b"1", b"2", b"3"])
    handler = Recorder()
    started = time.monotonic()

    # WHEN the mapping runs
    with running(stack, handler, batch_size=100, maximum_batching_window_s=0.5) as mapping:
        assert mapping.wait_caught_up(WAIT_S)

    # THEN one invocation carried all three, once the window had elapsed
    assert handler.batches() == [[b"1", b"2", b"3"]]
    assert handler.invoked_at[0] - started >= 0.5


def test_latest_skips_the_records_put_before_start(stack: DeployedStack) -> None:
    # GIVEN records put before the mapping starts at LATEST
    put(stack, [b"old-1", b"old-2"])
    handler = Recorder()

    # WHEN more records are put after start
    with running(stack, handler, starting_position="LATEST") as mapping:
        put(stack, [b"new-1", b"new-2"])
        assert mapping.wait_caught_up(WAIT_S)

    # THEN only those are delivered
    assert [d for batch in handler.batches() for d in batch] == [b"new-1", b"new-2"]


def test_at_timestamp_starts_at_the_first_record_after_it(stack: DeployedStack) -> None:
    # GIVEN records put before and after a moment
    put(stack, [b"before"])
    time.sleep(0.05)
    moment = time.time()
    time.sleep(0.05)
    put(stack, [b"after"])
    handler = Recorder()

    # WHEN the mapping starts AT_TIMESTAMP that moment
    with running(
        stack, handler, starting_position="AT_TIMESTAMP", starting_position_timestamp=moment
    ) as mapping:
        assert mapping.wait_caught_up(WAIT_S)

    # THEN only the later record is delivered
    assert handler.batches() == [[b"after"]]


def test_stop_ends_every_poller_thread(stack: DeployedStack) -> None:
    # GIVEN a running mapping
    with running(stack, Recorder()) as mapping:
        assert mapping.wait_caught_up(WAIT_S)
        names = {t.name for t in threading.enumerate() if t.name.startswith("esm-")}
        assert len(names) >= 3  # two shards and the shard discovery

    # WHEN it has stopped (the context manager asserted stop() returned True)
    # THEN none of its threads is left
    assert not [t for t in threading.enumerate() if t.name in names and t.is_alive()]


def test_shards_added_by_resharding_are_found_and_read(stack: DeployedStack) -> None:
    # GIVEN a running mapping that looks for new shards every 50 ms
    handler = Recorder()
    with running(stack, handler, shard_refresh_s=0.05) as mapping:
        assert mapping.wait_caught_up(WAIT_S)
        before = set(mapping.checkpoints())
        # WHEN the stream is resharded from 2 to 4 shards
        kinesis = client("kinesis")
        kinesis.update_shard_count(
            StreamARN=stack.stream_arn, TargetShardCount=4, ScalingType="UNIFORM_SCALING"
        )
        shards = {s["ShardId"] for s in kinesis.list_shards(StreamARN=stack.stream_arn)["Shards"]}
        added = shards - before
        assert len(added) >= 2, "moto added no shard"
        deadline = time.monotonic() + WAIT_S
        while not added <= set(mapping.checkpoints()) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        # THEN every new shard gets a reader
        assert added <= set(mapping.checkpoints())
        assert {f"esm-{shard_id}" for shard_id in added} <= {t.name for t in threading.enumerate()}
        # AND records put now are delivered exactly once (moto still routes them to the parent
        # shards after resharding, so this shows nothing was lost, not where they were read)
        payloads = [f"r{i}".encode() for i in range(40)]
        kinesis.put_records(
            StreamARN=stack.stream_arn,
            Records=[{"Data": p, "PartitionKey": f"key-{i}"} for i, p in enumerate(payloads)],
        )
        assert mapping.wait_caught_up(WAIT_S)
    assert sorted(d for batch in handler.batches() for d in batch) == sorted(payloads)


# --- partial batch responses ---------------------------------------------------------------------


def test_partial_failure_redelivers_from_the_lowest_failed_sequence_number(
    stack: DeployedStack,
) -> None:
    # GIVEN five records, and a handler that first reports records 4 and 2 (0-based) as failed
    seqs = put(stack, [b"r0", b"r1", b"r2", b"r3", b"r4"])

    def behaviour(data: list[bytes], batch: list[str], call: int) -> Any:
        if call == 1:
            return {"batchItemFailures": [{"itemIdentifier": seqs[4]}, {"itemIdentifier": seqs[2]}]}
        return {"batchItemFailures": []}

    handler = Recorder(behaviour)

    # WHEN the mapping runs
    with running(stack, handler, batch_size=10) as mapping:
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats

    # THEN the retry starts at the lowest failed record; r0 and r1 are never redelivered
    assert handler.batches() == [[b"r0", b"r1", b"r2", b"r3", b"r4"], [b"r2", b"r3", b"r4"]]
    assert (stats.invocations, stats.batch_item_failures, stats.records_succeeded) == (2, 2, 5)
    assert stats.on_failure_sent == 0


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "no-such-sequence-number"}]},
        {"batchItemFailures": [{"itemIdentifer": "misspelt key"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": "not a list"},
    ],
    ids=["unknown-id", "bad-key", "empty-id", "null-id", "not-a-list"],
)
def test_an_invalid_partial_response_fails_the_whole_batch(
    stack: DeployedStack, response: dict[str, Any]
) -> None:
    # GIVEN a handler whose first answer is malformed, with bisecting off
    put(stack, [b"x0", b"x1", b"x2"])
    handler = Recorder(lambda data, seqs, call: response if call == 1 else None)

    # WHEN the mapping runs
    with running(stack, handler, batch_size=10, bisect_batch_on_function_error=False) as mapping:
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats

    # THEN the whole batch is delivered again
    assert handler.batches() == [[b"x0", b"x1", b"x2"]] * 2
    assert (stats.invalid_responses, stats.function_errors) == (1, 0)


def test_partial_responses_are_ignored_without_report_batch_item_failures(
    stack: DeployedStack,
) -> None:
    # GIVEN a mapping without ReportBatchItemFailures and a handler reporting a failure
    seqs = put(stack, [b"y0", b"y1"])
    handler = Recorder(
        lambda data, batch, call: {"batchItemFailures": [{"itemIdentifier": seqs[0]}]}
    )

    # WHEN the mapping runs
    with running(stack, handler, report_batch_item_failures=False) as mapping:
        assert mapping.wait_caught_up(WAIT_S)

    # THEN Lambda does not read the response: one invocation, batch done
    assert handler.batches() == [[b"y0", b"y1"]]


# --- function errors -----------------------------------------------------------------------------


def test_a_function_error_with_bisect_splits_the_batch_until_the_bad_record_is_alone(
    stack: DeployedStack,
) -> None:
    # GIVEN four records, the third poison, no retries beyond bisecting
    seqs = put(stack, [b"ok0", b"ok1", b"bad", b"ok3"])
    handler = Recorder(fail_when(b"bad"))

    # WHEN the mapping runs with BisectBatchOnFunctionError
    with running(
        stack,
        handler,
        batch_size=4,
        bisect_batch_on_function_error=True,
        maximum_retry_attempts=0,
    ) as mapping:
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats

    # THEN the batch is halved, and halved again, isolating the poison record
    assert handler.batches() == [
        [b"ok0", b"ok1", b"bad", b"ok3"],
        [b"ok0", b"ok1"],
        [b"bad", b"ok3"],
        [b"bad"],
        [b"ok3"],
    ]
    assert (stats.bisections, stats.function_errors, stats.records_succeeded) == (2, 3, 3)
    # AND only the poison record's metadata went to the DLQ
    (message,) = dlq_messages(stack, expected=1)
    info = message["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (seqs[2], seqs[2])
    assert info["batchSize"] == 1
    # it was in three invocations (the full batch, its half, alone); bisecting is no retry
    assert message["requestContext"]["approximateInvokeCount"] == 3


def test_retries_exhausted_sends_the_batch_metadata_and_the_shard_moves_on(
    stack: DeployedStack,
) -> None:
    # GIVEN three poison records in one batch, two retries allowed, no bisecting
    seqs = put(stack, [b"bad", b"bad", b"bad"])
    handler = Recorder(fail_when(b"bad"))
    put_at = time.time()

    # WHEN the mapping runs, and a good record follows later
    with running(
        stack,
        handler,
        batch_size=10,
        bisect_batch_on_function_error=False,
        maximum_retry_attempts=2,
    ) as mapping:
        messages = dlq_messages(stack, expected=1)
        put(stack, [b"good"])
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats

    # THEN the batch was invoked three times (first try + 2 retries), then skipped
    assert handler.batches() == [[b"bad"] * 3] * 3 + [[b"good"]]
    assert (stats.function_errors, stats.on_failure_sent, stats.records_discarded) == (3, 1, 3)
    # AND the DLQ got exactly one on-failure record, in AWS's shape
    (message,) = messages
    assert set(message) == {
        "requestContext",
        "responseContext",
        "version",
        "timestamp",
        "KinesisBatchInfo",
    }
    context = message["requestContext"]
    assert set(context) == {"requestId", "functionArn", "condition", "approximateInvokeCount"}
    assert re.fullmatch(r"[0-9a-f-]{36}", context["requestId"])
    assert context["functionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:hotstore"
    assert context["condition"] == "RetryAttemptsExhausted"
    assert context["approximateInvokeCount"] == 3
    assert message["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert message["version"] == "1.0"
    assert ISO_MS.match(message["timestamp"])
    info = message["KinesisBatchInfo"]
    assert set(info) == {
        "shardId",
        "startSequenceNumber",
        "endSequenceNumber",
        "approximateArrivalOfFirstRecord",
        "approximateArrivalOfLastRecord",
        "batchSize",
        "streamArn",
    }
    assert info["shardId"] == "shardId-000000000000"
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (seqs[0], seqs[2])
    assert ISO_MS.match(info["approximateArrivalOfFirstRecord"])
    assert ISO_MS.match(info["approximateArrivalOfLastRecord"])
    first = datetime.fromisoformat(info["approximateArrivalOfFirstRecord"].replace("Z", "+00:00"))
    assert abs(first.timestamp() - put_at) < 5
    assert info["batchSize"] == 3
    assert info["streamArn"] == stack.stream_arn


def test_a_handler_running_past_its_timeout_is_a_function_error(stack: DeployedStack) -> None:
    # GIVEN a handler that is slow only the first time, and a 0.1 s function timeout
    put(stack, [b"slow"])
    handler = Recorder(lambda data, seqs, call: time.sleep(0.2) if call == 1 else None)

    # WHEN the mapping runs
    mapping = KinesisEventSourceMapping(
        stream_arn=stack.stream_arn,
        function_name="hotstore",
        handler=handler,
        settings=replace(stack.mapping, maximum_batching_window_s=0),
        region=stack.region,
        poll_interval_s=POLL_S,
        function_timeout_s=0.1,
    )
    with mapping:
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats

    # THEN the first run counted as failed and the record was delivered again
    assert handler.batches() == [[b"slow"], [b"slow"]]
    assert stats.function_errors == 1


# --- record age ----------------------------------------------------------------------------------


def test_records_older_than_the_maximum_age_go_to_the_dlq_after_a_failure(
    stack: DeployedStack,
) -> None:
    # GIVEN a handler that fails once and, meanwhile, two hours pass (for a 60 s maximum age)
    clock = Clock()
    put(stack, [b"aging-1", b"aging-2"])

    def behaviour(data: list[bytes], seqs: list[str], call: int) -> Any:
        if call == 1:
            clock.offset = 7200
            raise RuntimeError("down for a while")
        return None

    handler = Recorder(behaviour)

    # WHEN the mapping runs with unlimited retries
    with running(
        stack,
        handler,
        clock=clock,
        maximum_record_age_s=60,
        maximum_retry_attempts=-1,
        bisect_batch_on_function_error=False,
    ) as mapping:
        (message,) = dlq_messages(stack, expected=1)
        clock.offset = 0
        put(stack, [b"fresh"])
        assert mapping.wait_caught_up(WAIT_S)
        stats = mapping.stats

    # THEN the aged records were not retried but reported, and the shard moved on
    assert handler.batches() == [[b"aging-1", b"aging-2"], [b"fresh"]]
    assert message["requestContext"]["condition"] == "RecordAgeExceeded"
    assert message["requestContext"]["approximateInvokeCount"] == 1
    assert message["responseContext"]["functionError"] == "Unhandled"
    assert message["KinesisBatchInfo"]["batchSize"] == 2
    assert (stats.records_discarded, stats.on_failure_sent) == (2, 1)


def test_records_already_too_old_are_reported_without_invoking(stack: DeployedStack) -> None:
    # GIVEN records that are two hours old by the mapping's clock
    clock = Clock()
    clock.offset = 7200
    put(stack, [b"stale"])
    handler = Recorder()

    # WHEN the mapping runs with a 60 s maximum age
    with running(stack, handler, clock=clock, maximum_record_age_s=60) as mapping:
        (message,) = dlq_messages(stack, expected=1)
        assert mapping.wait_caught_up(WAIT_S)

    # THEN the function never saw them, and the record says no invocation happened
    assert handler.events == []
    assert message["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in message
    assert message["KinesisBatchInfo"]["batchSize"] == 1


def test_a_stream_deleted_under_the_mapping_is_said_once_and_not_retried(
    stack: DeployedStack, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a running mapping that lists the shards every 50 ms and polls every 20 ms
    handler = Recorder()
    with running(stack, handler, shard_refresh_s=0.05) as mapping:
        put(stack, [b"before"])
        assert mapping.wait_caught_up(WAIT_S)

        # WHEN the stream is deleted under it (e.g. `tradestream destroy` while it runs)
        with caplog.at_level(logging.WARNING):
            client("kinesis").delete_stream(StreamARN=stack.stream_arn)
            assert wait_for(lambda: any("no longer exists" in m for m in caplog.messages))
            time.sleep(1)  # some 50 polls and 20 listings, each of which used to log again

    # THEN it was said once, as an error naming the stream, without a traceback
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in said] == [logging.ERROR], caplog.messages
    assert stack.stream_arn in said[0].getMessage()
    assert said[0].exc_info is None
    assert handler.batches() == [[b"before"]]


def wait_for(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
