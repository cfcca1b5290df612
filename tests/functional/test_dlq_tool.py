"""`tradestream dlq list / redrive` end to end, over real HTTP against moto server.

Each test deploys its own copy of the stacks; the DLQ is filled the way it is in production:
poison records put on the stream and handed by the mapping emulation to the real hotstore
handler (which sends them itself, through lambdas.hotstore.dlq), and a batch the mapping gave up
on after its retries (a handler that fails), whose OnFailure record it sends to the same queue.
The tool finds the queue through the hotstore stack's output, as it does everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lambdas.hotstore import handler as hotstore_handler
from lambdas.hotstore.dlq import DeadLetter, message_body
from lambdas.hotstore.records import RecordRef
from tests.support.faults import FaultProxy
from tests.support.kinesis import read_stream
from tradestream import aws, kpl
from tradestream.cli.dlq import dlq_command
from tradestream.dead_letters.messages import Selection, decode
from tradestream.dead_letters.operations import Clients, redrive
from tradestream.dead_letters.settings import DeadLetterSettings
from tradestream.kinesis import BatchLimits
from tradestream.local.esm.events import StreamRecord, on_failure_record
from tradestream.local.esm.mapping import KinesisEventSourceMapping
from tradestream.local.hot_path import DeployedStack, deploy
from tradestream.local.moto_server import MotoHandle
from tradestream.readback import queue_depth
from tradestream.retry import Clock

POLL_S = 0.02
WAIT_S = 20.0
GOOD_TRADE = b'{"s":"AAPL","p":187.5,"v":100,"t":1733300000000,"c":["1"]}'
NOT_JSON = b"not json {"
BINARY = b"\xff\xfe\x00\x01 binary \x80"
NOT_A_TRADE = b'{"s":"MSFT","p":-1,"v":1,"t":1733300000000}'
# Over SQS's 256 KiB once base64: the hotstore sends its locator and digest, not its data.
LARGE = b"\x00" + bytes(range(256)) * 800
FAILING_BATCH = [
    b'{"s":"AMZN","p":180.25,"v":5,"t":1733300000001,"c":["1"]}',
    b'{"s":"AMZN","p":180.5,"v":7,"t":1733300000002,"c":["1"]}',
    b'{"s":"AMZN","p":180.75,"v":9,"t":1733300000003,"c":["1"]}',
]
Record = tuple[bytes, str]  # data, partition key


@dataclass(frozen=True)
class Put:
    data: bytes
    key: str
    shard_id: str
    sequence_number: str


@dataclass(frozen=True)
class Filled:
    """A deployed stack whose DLQ holds the poison records and one on-failure batch."""

    stack: DeployedStack
    poison: dict[bytes, Put]  # by data
    batch: list[Put]  # the batch the mapping gave up on, in order

    @property
    def records(self) -> list[Record]:
        every = [*self.poison.values(), *self.batch]
        return [(put.data, put.key) for put in every]


def put(stack: DeployedStack, records: list[Record], shard: int | None = None) -> list[Put]:
    kinesis = aws.client("kinesis")
    hash_key = {}
    if shard is not None:
        shards = kinesis.list_shards(StreamName=stack.stream_name)["Shards"]
        hash_key = {"ExplicitHashKey": shards[shard]["HashKeyRange"]["StartingHashKey"]}
    answer = kinesis.put_records(
        StreamName=stack.stream_name,
        Records=[{"Data": data, "PartitionKey": key, **hash_key} for data, key in records],
    )
    assert answer["FailedRecordCount"] == 0
    return [
        Put(data, key, result["ShardId"], result["SequenceNumber"])
        for (data, key), result in zip(records, answer["Records"], strict=True)
    ]


def run_mapping(stack: DeployedStack, handler: Any, until: Any, **settings: Any) -> None:
    mapping = KinesisEventSourceMapping(
        stream_arn=stack.stream_arn,
        function_name=stack.function.function_name,
        handler=handler,
        settings=replace(stack.mapping, maximum_batching_window_s=0, **settings),
        region=stack.region,
        poll_interval_s=POLL_S,
    )
    mapping.start()
    try:
        until(mapping)
    finally:
        assert mapping.stop(timeout=5)


def wait_for_depth(stack: DeployedStack, depth: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while queue_depth(stack.dlq_url) < depth:
        assert time.monotonic() < deadline, f"the DLQ never held {depth} messages"
        time.sleep(POLL_S)


def always_fails(event: dict[str, Any], context: Any) -> Any:
    raise RuntimeError("the handler is broken")


def hotstore_environment(stack: DeployedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hotstore's environment as the template declares it (TABLE_NAME, DLQ_URL, TTL_DAYS)."""
    for name, value in stack.function.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    hotstore_handler.reset()


def given_up_batch(stack: DeployedStack, records: list[Record], depth: int) -> list[Put]:
    """``records`` put on shard 1 as one batch that a broken handler fails until the mapping
    gives up on it and sends its OnFailure record: the DLQ then holds ``depth`` messages."""
    batch: list[Put] = []

    def fail_a_batch(mapping: KinesisEventSourceMapping) -> None:
        batch.extend(put(stack, records, shard=1))
        wait_for_depth(stack, depth)

    run_mapping(
        stack,
        always_fails,
        fail_a_batch,
        starting_position="LATEST",
        maximum_retry_attempts=1,
        bisect_batch_on_function_error=False,
    )
    hotstore_handler.reset()
    return batch


def tool_environment(stack: DeployedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tool's own settings: the queue comes from the hotstore stack, not from DLQ_URL."""
    monkeypatch.delenv("DLQ_URL")
    monkeypatch.setenv("STREAM_NAME", stack.stream_name)
    monkeypatch.setenv("TABLE_NAME", stack.table_name)
    monkeypatch.setenv("DLQ_RECEIVE_WAIT_SECONDS", "0")
    monkeypatch.setenv("REDRIVE_BACKOFF_BASE_SECONDS", "0.001")
    monkeypatch.setenv("REDRIVE_BACKOFF_MAX_SECONDS", "0.01")


@pytest.fixture
def filled(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Filled:
    stack = deploy(stream_name=f"trades-{unique}", table_name=f"stock_trades-{unique}")
    hotstore_environment(stack, monkeypatch)

    # GIVEN poison records among good ones, handled by the real hotstore function
    poison = [(NOT_JSON, "AAPL"), (BINARY, "MSFT"), (NOT_A_TRADE, "MSFT"), (LARGE, "TSLA")]
    puts = put(stack, [(GOOD_TRADE, "AAPL"), *poison])
    run_mapping(stack, hotstore_handler.handler, lambda m: m.wait_caught_up(WAIT_S))
    wait_for_depth(stack, len(poison))

    # AND a batch on shard 1 that a broken handler failed until the mapping gave up on it
    batch = given_up_batch(stack, [(data, "AMZN") for data in FAILING_BATCH], len(poison) + 1)

    tool_environment(stack, monkeypatch)
    return Filled(stack, {p.data: p for p in puts[1:]}, batch)


def dlq(*args: str) -> Result:
    return CliRunner().invoke(dlq_command, list(args))


def listed(*args: str) -> list[dict[str, Any]]:
    result = dlq("list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def redriven(*args: str, status: int = 0) -> dict[str, Any]:
    result = dlq("redrive", *args)
    assert result.exit_code == status, result.output
    *_, last = result.stdout.splitlines()
    summary: dict[str, Any] = json.loads(last)
    return summary


def stream_records(stack: DeployedStack) -> Counter[Record]:
    records = read_stream(aws.client("kinesis"), stack.stream_name)
    return Counter((bytes(r["Data"]), r["PartitionKey"]) for r in records)


def visible_and_hidden(stack: DeployedStack) -> tuple[int, int]:
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def position(message: dict[str, Any]) -> tuple[str, str]:
    # Sequence numbers are unique per shard only (moto counts from 1 in each).
    return message["shard_id"], message["sequence_number"]


# --- list ------------------------------------------------------------------------------------


def test_list_decodes_every_message_and_consumes_none(filled: Filled) -> None:
    # WHEN the DLQ is listed as JSON
    messages = listed()

    # THEN each poison record is there with its payload, reason and position in the stream
    assert len(messages) == 5
    hotstore = {position(m): m for m in messages if m["kind"] == "hotstore"}
    assert len(hotstore) == 4
    of = {data: hotstore[p.shard_id, p.sequence_number] for data, p in filled.poison.items()}
    for data, sent in filled.poison.items():
        message = of[data]
        assert (message["stream"], message["stream_arn"]) == (
            filled.stack.stream_name,
            filled.stack.stream_arn,
        )
        assert (message["partition_key"], message["payload_bytes"]) == (sent.key, len(data))
        assert message["error"]
    assert [of[d]["reason"] for d in (NOT_JSON, BINARY, NOT_A_TRADE, LARGE)] == [
        "InvalidJson",
        "InvalidJson",
        "InvalidTrade",
        "InvalidJson",
    ]
    # AND text payloads read as text, binary ones as base64, one too large for SQS as absent
    shown = {data: (m["payload"], m["payload_encoding"]) for data, m in of.items()}
    assert shown[NOT_JSON] == (NOT_JSON.decode(), "text")
    assert shown[NOT_A_TRADE] == (NOT_A_TRADE.decode(), "text")
    assert shown[BINARY] == (base64.b64encode(BINARY).decode(), "base64")
    assert (shown[LARGE], of[LARGE]["data_omitted"]) == ((None, None), True)

    # AND the mapping's batch shows its condition, shard, sequence range and size
    (batch,) = [m for m in messages if m["kind"] == "on-failure"]
    assert batch["reason"] == "RetryAttemptsExhausted"
    assert batch["error"] == "function error Unhandled after 2 invocations"
    assert batch["shard_id"] == filled.batch[0].shard_id == "shardId-000000000001"
    assert (batch["start_sequence_number"], batch["end_sequence_number"]) == (
        filled.batch[0].sequence_number,
        filled.batch[-1].sequence_number,
    )
    assert (batch["batch_size"], batch["payload"]) == (3, None)

    # AND every message is visible again, and a second listing sees the same ones
    assert visible_and_hidden(filled.stack) == (5, 0)
    again = listed()
    assert {m["message_id"] for m in again} == {m["message_id"] for m in messages}
    assert all(m["receive_count"] == 2 for m in again)


def test_the_table_shows_one_line_per_message_with_its_payload(filled: Filled) -> None:
    # WHEN the DLQ is listed for a person
    result = dlq("list")

    # THEN there is a line per message naming it, its reason and its payload
    assert result.exit_code == 0, result.output
    ids = [m["message_id"] for m in listed()]
    lines = result.stdout.splitlines()
    for message_id in ids:
        (line,) = [line for line in lines if message_id in line]
        assert any(reason in line for reason in ("InvalidJson", "InvalidTrade", "RetryAttempts"))
    assert any("not json {" in line for line in lines)
    assert any("[base64] " + base64.b64encode(BINARY).decode() in line for line in lines)
    assert "5 messages (4 hotstore, 1 on-failure)" in result.stderr


def test_filters_select_by_reason_kind_shard_symbol_and_message_id(filled: Filled) -> None:
    everything = listed()
    # WHEN the listing is filtered THEN only the matching messages are listed
    assert {m["payload"] for m in listed("--reason", "InvalidTrade")} == {NOT_A_TRADE.decode()}
    assert len(listed("--reason", "InvalidJson")) == 3  # LARGE is not JSON either
    assert len(listed("--reason", "InvalidJson", "--reason", "InvalidTrade")) == 4
    assert [m["kind"] for m in listed("--kind", "on-failure")] == ["on-failure"]
    assert {m["partition_key"] for m in listed("--symbol", "MSFT")} == {"MSFT"}
    assert len(listed("--symbol", "MSFT")) == 2
    assert listed("--symbol", "AMZN") == []  # an on-failure message names no partition key
    on_shard_1 = listed("--shard", "shardId-000000000001")
    assert {m["shard_id"] for m in on_shard_1} == {"shardId-000000000001"}
    assert len(on_shard_1) == sum(m["shard_id"] == "shardId-000000000001" for m in everything)
    one = everything[2]["message_id"]
    assert [m["message_id"] for m in listed("--message-id", one)] == [one]
    assert listed("--kind", "on-failure", "--reason", "InvalidJson") == []


# --- redrive ---------------------------------------------------------------------------------


def test_redrive_puts_every_record_back_with_its_key_and_empties_the_queue(
    filled: Filled,
) -> None:
    before = stream_records(filled.stack)

    # WHEN everything is redriven
    summary = redriven()

    # THEN every poison record and every record of the failed batch (read back from the
    # stream) arrived again, with the same data and partition key
    added = stream_records(filled.stack) - before
    assert added == Counter(filled.records)
    # AND every message was deleted, and the counts reconcile
    assert summary == {
        "dry_run": False,
        "messages": 5,
        "selected": 5,
        "skipped": 0,
        "unreadable": 0,
        "records": 7,
        "records_put": 7,
        "put_calls": 1,
        "deleted": 5,
        "kept": 0,
        "not_retained": 0,
        "failed": 0,
        "stopped": None,
        "kept_messages": [],
    }
    assert queue_depth(filled.stack.dlq_url) == 0


def test_a_dry_run_reports_what_it_would_do_and_changes_nothing(filled: Filled) -> None:
    before = stream_records(filled.stack)

    # WHEN a dry run is asked for
    summary = redriven("--dry-run")

    # THEN it says what a redrive would put and delete
    assert summary["dry_run"] is True
    assert (summary["records"], summary["records_put"], summary["deleted"]) == (7, 7, 5)
    # AND the stream and the queue are as they were, every message visible
    assert stream_records(filled.stack) == before
    assert visible_and_hidden(filled.stack) == (5, 0)


def test_a_filtered_redrive_deletes_only_the_messages_it_selected(filled: Filled) -> None:
    before = stream_records(filled.stack)

    # WHEN only the MSFT records and the failed batch are redriven (two runs)
    first = redriven("--symbol", "MSFT")
    second = redriven("--kind", "on-failure")

    # THEN exactly their records arrived
    added = stream_records(filled.stack) - before
    assert added == Counter(
        [(BINARY, "MSFT"), (NOT_A_TRADE, "MSFT"), *((d, "AMZN") for d in FAILING_BATCH)]
    )
    assert (first["selected"], first["skipped"], first["deleted"]) == (2, 3, 2)
    assert (second["selected"], second["skipped"], second["deleted"]) == (1, 2, 1)
    # AND the other messages are still there, visible
    assert {m["payload"] for m in listed()} == {NOT_JSON.decode(), None}
    assert visible_and_hidden(filled.stack) == (2, 0)


def test_messages_whose_records_the_stream_no_longer_holds_are_kept_and_reported(
    filled: Filled,
) -> None:
    # GIVEN the stream emptied (deleted and created again, as if every record had expired)
    kinesis = aws.client("kinesis")
    kinesis.delete_stream(StreamName=filled.stack.stream_name)
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=filled.stack.stream_name, WaiterConfig={"Delay": 0.1}
    )
    kinesis.create_stream(StreamName=filled.stack.stream_name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=filled.stack.stream_name, WaiterConfig={"Delay": 0.1}
    )
    # AND an on-failure record naming a shard the stream no longer has (closed and expired)
    gone = StreamRecord("shardId-000000000009", "49000000000000000001", "AAPL", b"", time.time())
    body = on_failure_record(
        records=[gone],
        condition="RecordAgeExceeded",
        invoke_count=0,
        last_response=None,
        request_id="6f1c3d52-3e4b-4f9e-9a57-0c2c1b2f0e11",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:hotstore",
        stream_arn=filled.stack.stream_arn,
        now=time.time(),
    )
    aws.client("sqs").send_message(QueueUrl=filled.stack.dlq_url, MessageBody=json.dumps(body))

    # WHEN everything is redriven
    summary = redriven(status=1)

    # THEN the poison records the messages carry went back, and their messages were deleted
    assert stream_records(filled.stack) == Counter(
        [(NOT_JSON, "AAPL"), (BINARY, "MSFT"), (NOT_A_TRADE, "MSFT")]
    )
    assert (summary["records_put"], summary["deleted"]) == (3, 3)
    # AND the three whose records are gone were kept, each saying why
    assert (summary["kept"], summary["not_retained"], summary["failed"]) == (3, 3, 0)
    assert {k["why"] for k in summary["kept_messages"]} == {"NotRetained"}
    details = " ".join(k["detail"] for k in summary["kept_messages"])
    assert "shardId-000000000009" in details
    assert "ResourceNotFoundException" in details
    assert filled.batch[0].sequence_number in details
    assert visible_and_hidden(filled.stack) == (3, 0)


def test_a_redrive_stopped_halfway_deletes_only_messages_whose_records_all_went_in(
    filled: Filled, moto: MotoHandle
) -> None:
    # GIVEN PutRecords calls of two records, and Kinesis refusing every call after the first
    records = records_by_message(filled)
    before = stream_records(filled.stack)
    with FaultProxy(moto.url) as proxy:
        puts = aws.client("kinesis", endpoint_url=proxy.url, config=aws.NO_SDK_RETRIES)
        first_call: list[Record] = []

        def record_the_first(params: dict[str, Any], **_: Any) -> None:
            if not first_call:
                sent = json.loads(params["body"])["Records"]
                first_call.extend((base64.b64decode(r["Data"]), r["PartitionKey"]) for r in sent)

        def refuse_the_rest(**_: Any) -> None:
            proxy.fail_next("PutRecords", 100, status=400, code="AccessDeniedException")

        puts.meta.events.register("before-call.kinesis.PutRecords", record_the_first)
        puts.meta.events.register("after-call.kinesis.PutRecords", refuse_the_rest)
        clients = replace(Clients.from_environment(), kinesis_puts=puts)

        # WHEN everything is redriven
        summary = redrive(
            DeadLetterSettings(),
            clients,
            Selection(),
            limits=BatchLimits(max_records=2),
            clock=Clock(sleep=lambda _: None),
        )

    # THEN it stopped at the refusal, and the stream holds the first call's records only
    assert summary.stopped == "AccessDeniedException"
    assert not summary.complete
    assert len(first_call) == summary.records_put == 2
    assert stream_records(filled.stack) - before == Counter(first_call)
    # AND the messages deleted are exactly those whose records were all in that call
    complete = {mid for mid, theirs in records.items() if theirs <= set(first_call)}
    assert complete
    assert {m["message_id"] for m in listed()} == set(records) - complete
    assert summary.deleted == len(complete)
    assert visible_and_hidden(filled.stack) == (5 - len(complete), 0)


def test_records_refused_past_the_budget_keep_their_messages(
    filled: Filled, moto: MotoHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stream that refuses half of the entries of every PutRecords, and two attempts
    records = records_by_message(filled)
    before = stream_records(filled.stack)
    with FaultProxy(moto.url, seed=3) as proxy:
        proxy.kinesis_put_failure_rate = 0.5
        monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", proxy.url)
        monkeypatch.setenv("REDRIVE_MAX_ATTEMPTS", "2")

        # WHEN everything is redriven
        summary = redriven(status=1)
        monkeypatch.delenv("AWS_ENDPOINT_URL_KINESIS")

    # THEN a second call resent only what was refused: every record put is on the stream once
    assert proxy.counts["PutRecords"] == summary["put_calls"] == 2
    added = stream_records(filled.stack) - before
    assert set(added.values()) == {1}
    assert sum(added.values()) == summary["records_put"] < 7
    # (refused: those of the first call, then those of the resend that were refused again)
    assert proxy.injected["PutRecords:entries"] > 7 - summary["records_put"]
    # AND a message was deleted only when all its records arrived; the others are kept
    complete = {mid for mid, theirs in records.items() if theirs <= set(added)}
    kept = {k["message_id"] for k in summary["kept_messages"]}
    assert kept == set(records) - complete
    assert {k["why"] for k in summary["kept_messages"]} == {"PutFailed"}
    assert summary["failed"] == len(kept) > 0
    assert summary["deleted"] == len(complete) > 0
    assert {m["message_id"] for m in listed()} == kept


def records_by_message(filled: Filled) -> dict[str, set[Record]]:
    """The records each DLQ message stands for, from what was put on the stream."""
    by_position = {(put.shard_id, put.sequence_number): put for put in filled.poison.values()}
    found: dict[str, set[Record]] = {}
    for message in listed():
        if message["kind"] == "hotstore":
            sent = by_position[position(message)]
            found[message["message_id"]] = {(sent.data, sent.key)}
        else:
            found[message["message_id"]] = {(put.data, put.key) for put in filled.batch}
    return found


# --- settings and formats ----------------------------------------------------------------------


def test_the_queue_is_the_stacks_unless_dlq_url_or_dlq_name_say_otherwise(
    filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table name no hotstore stack was deployed for
    monkeypatch.setenv("TABLE_NAME", "no_such_table")

    # WHEN the DLQ is listed THEN the command says which stack it looked for and what to set
    result = dlq("list", "--json")
    assert result.exit_code == 1
    assert "no stack tradestream-hotstore-no-such-table" in result.output
    assert "DLQ_URL or DLQ_NAME" in result.output
    assert "Traceback" not in result.output

    # AND the queue's name or URL finds it without the stack
    queue_name = filled.stack.dlq_url.rpartition("/")[2]
    monkeypatch.setenv("DLQ_NAME", queue_name)
    assert len(listed()) == 5
    monkeypatch.setenv("DLQ_NAME", "no-such-queue")
    monkeypatch.setenv("DLQ_URL", filled.stack.dlq_url)  # wins over DLQ_NAME
    assert len(listed()) == 5


def test_the_hotstore_format_is_read_as_the_function_writes_it() -> None:
    # GIVEN messages built by the function's own code: one with the data, one too large for it,
    # and one of a poison user record from inside an aggregate
    def body(data: bytes, user: kpl.UserRecord | None = None) -> str:
        ref = RecordRef(
            event_source_arn="arn:aws:kinesis:us-east-1:123456789012:stream/trades",
            shard_id="shardId-000000000003",
            sequence_number="49590338271490256608559692538361571095921575989136588898",
            partition_key="AAPL",
            approximate_arrival_timestamp=1718900000.123,
            data=base64.b64encode(data).decode(),
        )
        letter = DeadLetter(ref, "InvalidJson", "record: Invalid JSON", user)
        return message_body(letter, failed_at_ms=1718900001000, extra={"requestId": "r-1"})

    # WHEN the tool decodes them
    small = decode({"MessageId": "m-1", "Body": body(BINARY)})
    large = decode({"MessageId": "m-2", "Body": body(LARGE)})
    poison = kpl.UserRecord("TSLA", NOT_JSON, sub_sequence_number=7, aggregated=True)
    inside = decode({"MessageId": "m-3", "Body": body(kpl.aggregate([]), poison)})

    # THEN every field the function wrote is read back
    assert (small.kind, small.reason, small.error) == (
        "hotstore",
        "InvalidJson",
        "record: Invalid JSON",
    )
    assert (small.stream_name, small.shard_id, small.partition_key) == (
        "trades",
        "shardId-000000000003",
        "AAPL",
    )
    assert small.sequence_number == "49590338271490256608559692538361571095921575989136588898"
    assert small.data == BINARY
    assert small.failed_at == "2024-06-20T16:13:21.000Z"
    # AND a record left out for its size is known by its digest and length
    assert (large.data, large.data_omitted, large.data_length) == (None, True, len(LARGE))
    assert large.data_sha256 == hashlib.sha256(LARGE).hexdigest()
    # AND a user record of an aggregate is known by its position in it, with its own key and data
    assert (inside.sub_sequence_number, inside.partition_key, inside.data) == (7, "TSLA", NOT_JSON)
    assert inside.position == f"{inside.sequence_number}:7"
    assert (small.sub_sequence_number, small.position) == (None, small.sequence_number)
