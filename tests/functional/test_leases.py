"""Leases and durable checkpoints of both emulations, in the local stack's checkpoint table on moto
server over real HTTP.

A restarted consumer resumes after its checkpoints (nothing handled twice, nothing skipped), a
killed one's shards are taken over once its leases expire (redelivering at most what followed
its last checkpoint), and two consumers never both work a shard.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from tradestream import aws
from tradestream.cfn.template import TEMPLATE_DIR, load_template, resolver_for
from tradestream.local.esm.mapping import KinesisEventSourceMapping
from tradestream.local.firehose.delivery import FirehoseEmulation
from tradestream.local.firehose.settings import delivery_stream_settings
from tradestream.local.hot_path import DeployedStack, deploy
from tradestream.local.leases import DynamoDBLeases, Lease
from tradestream.readback import object_bodies

WAIT_S = 30.0
LEASE_S = 1.0


@pytest.fixture
def stack(aws_env: str, unique: str) -> DeployedStack:
    return deploy(stream_name=f"leases-{unique}", table_name=f"leases_{unique}")


def leases(stack: DeployedStack, consumer: str = "mapping/test", **kwargs: Any) -> DynamoDBLeases:
    assert stack.checkpoint_table is not None
    return DynamoDBLeases(
        table_name=stack.checkpoint_table, consumer=consumer, duration_s=LEASE_S, **kwargs
    )


class Abandoned(DynamoDBLeases):
    """Leases a killed process leaves behind: never released, they have to expire."""

    def release(self, shard_ids: Iterable[str]) -> None:
        return None


def put(stack: DeployedStack, first: int, count: int) -> list[str]:
    """Records ``first``..``first+count-1`` as "r<n>", spread over the stream's shards."""
    kinesis = aws.client("kinesis")
    payloads = [f"r{n}" for n in range(first, first + count)]
    for start in range(0, count, 500):
        chunk = payloads[start : start + 500]
        answer = kinesis.put_records(
            StreamName=stack.stream_name,
            # One line each, so the lake's objects (no transform) split back into records.
            Records=[
                {"Data": f"{p}\n".encode(), "PartitionKey": f"k{i % 7}"}
                for i, p in enumerate(chunk)
            ],
        )
        assert answer["FailedRecordCount"] == 0
    return payloads


@dataclass
class Handled:
    """A hotstore stand-in recording what each invocation got, per shard."""

    payloads: list[str] = field(default_factory=list)
    shards: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        with self.lock:
            for record in event["Records"]:
                data = base64.b64decode(record["kinesis"]["data"])
                self.payloads.append(data.decode().strip())
                self.shards.add(record["eventID"].split(":")[0])


def mapping(
    stack: DeployedStack, handler: Handled, lease: DynamoDBLeases
) -> KinesisEventSourceMapping:
    return KinesisEventSourceMapping(
        stream_arn=stack.stream_arn,
        function_name="hotstore",
        handler=handler,
        settings=replace(stack.mapping, maximum_batching_window_s=0, batch_size=100),
        region=stack.region,
        poll_interval_s=0.02,
        shard_refresh_s=0.2,
        leases=lease,
    )


@contextmanager
def started(consumer: KinesisEventSourceMapping) -> Iterator[KinesisEventSourceMapping]:
    consumer.start()
    try:
        yield consumer
    finally:
        consumer.stop()


def wait_for(condition: Any, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# --- the lease table itself ----------------------------------------------------------------------


def test_a_held_lease_is_refused_to_others_until_it_expires_or_is_released(
    stack: DeployedStack,
) -> None:
    # GIVEN one consumer's lease on a shard, held by A
    a = leases(stack, owner="A")
    b = leases(stack, owner="B")
    taken = a.take("shardId-000000000000")
    assert isinstance(taken, Lease)
    assert (taken.fresh, taken.checkpoint) == (True, None)

    # THEN B cannot take it, A can renew and checkpoint it
    assert b.take("shardId-000000000000") is None
    assert a.renew(["shardId-000000000000"]) == set()
    assert a.checkpoint("shardId-000000000000", "49500")

    # WHEN A's lease runs out, B takes it, resuming after A's checkpoint
    time.sleep(LEASE_S + 0.2)
    by_b = b.take("shardId-000000000000")
    assert by_b is not None
    assert (by_b.checkpoint, by_b.fresh) == ("49500", False)
    assert by_b.iterator_args({"ShardIteratorType": "LATEST"}) == {
        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "49500",
    }

    # THEN A has lost it: its renewal and its checkpoint are refused
    assert a.renew(["shardId-000000000000"]) == {"shardId-000000000000"}
    assert not a.checkpoint("shardId-000000000000", "49999")

    # WHEN B releases it, A takes it back at once, still at B's checkpoint (A's was refused)
    b.release(["shardId-000000000000"])
    again = a.take("shardId-000000000000")
    assert again is not None
    assert again.checkpoint == "49500"


def test_a_latest_consumer_restarted_before_its_first_checkpoint_resumes_where_it_first_began(
    stack: DeployedStack,
) -> None:
    # GIVEN a shard first taken by a consumer starting at LATEST, released with no checkpoint
    first = leases(stack, owner="first")
    lease = first.take("shardId-000000000001")
    assert lease is not None
    assert lease.iterator_args({"ShardIteratorType": "LATEST"}) == {"ShardIteratorType": "LATEST"}
    first.release(["shardId-000000000001"])

    # WHEN another takes it THEN it starts at the time the shard was first taken, not at the tip
    resumed = leases(stack, owner="second").take("shardId-000000000001")
    assert resumed is not None
    assert not resumed.fresh
    assert resumed.iterator_args({"ShardIteratorType": "LATEST"}) == {
        "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": lease.started_at_ms / 1000,
    }


# --- the event source mapping --------------------------------------------------------------------


def test_a_restarted_mapping_resumes_after_its_checkpoints(stack: DeployedStack) -> None:
    # GIVEN 400 records handled by a mapping that then stops (StartingPosition TRIM_HORIZON)
    sent = put(stack, 0, 400)
    before = Handled()
    with started(mapping(stack, before, leases(stack))) as first:
        assert wait_for(lambda: len(before.payloads) >= 400)
        assert first.wait_caught_up(WAIT_S)

    # WHEN 300 more are put and a new mapping (another owner) starts
    sent += put(stack, 400, 300)
    after = Handled()
    with started(mapping(stack, after, leases(stack))) as second:
        assert wait_for(lambda: len(after.payloads) >= 300)
        assert second.wait_caught_up(WAIT_S)

    # THEN it handled exactly the 300 new records: none again, none skipped
    assert sorted(before.payloads) == sorted(sent[:400])
    assert sorted(after.payloads) == sorted(sent[400:])


def test_two_mappings_on_one_stream_never_both_handle_a_shard(stack: DeployedStack) -> None:
    # GIVEN two mappings of one function on one two-shard stream, started together
    a, b = Handled(), Handled()
    with started(mapping(stack, a, leases(stack))), started(mapping(stack, b, leases(stack))):
        # WHEN 1,000 records are put
        sent = put(stack, 0, 1000)
        assert wait_for(lambda: len(a.payloads) + len(b.payloads) >= 1000)
        time.sleep(3 * LEASE_S)  # renewals keep each lease where it is

    # THEN every record was handled exactly once, and no shard by both
    assert sorted(a.payloads + b.payloads) == sorted(sent)
    assert not a.shards & b.shards


def test_a_killed_mappings_shards_are_taken_over_after_its_last_checkpoint(
    stack: DeployedStack,
) -> None:
    # GIVEN a mapping that handled 500 records and dies without releasing its leases, and a
    # standby mapping of the same function waiting for them
    first, standby = Handled(), Handled()
    assert stack.checkpoint_table is not None
    abandoned = Abandoned(
        table_name=stack.checkpoint_table, consumer="mapping/test", duration_s=LEASE_S
    )
    killed = mapping(stack, first, abandoned)
    sent = put(stack, 0, 500)
    killed.start()
    with started(mapping(stack, standby, leases(stack))):
        assert wait_for(lambda: len(first.payloads) >= 500)
        assert killed.wait_caught_up(WAIT_S)
        killed.stop()
        died_at = time.monotonic()

        # WHEN 500 more are put
        sent += put(stack, 500, 500)
        assert wait_for(lambda: len(standby.payloads) >= 500)
        took_over_after = time.monotonic() - died_at

    # THEN the standby waited for the leases to expire, then handled exactly the new records
    assert took_over_after >= LEASE_S * 0.5
    assert sorted(first.payloads) == sorted(sent[:500])
    assert sorted(standby.payloads) == sorted(sent[500:])


def test_a_mapping_whose_lease_is_taken_stops_handling_that_shard(stack: DeployedStack) -> None:
    # GIVEN a mapping holding both shards
    handled = Handled()
    lease = leases(stack)
    with started(mapping(stack, handled, lease)) as running:
        assert wait_for(lambda: len(running.lag_ms()) == 2)

        # WHEN another owner takes one shard's lease over (as after a pause past its expiry),
        # and keeps it (as if renewing it)
        table = aws.client("dynamodb")
        table.update_item(
            TableName=stack.checkpoint_table,
            Key={"leaseKey": {"S": lease.key("shardId-000000000000")}},
            UpdateExpression="SET leaseOwner = :other, expiresAtMs = :later",
            ExpressionAttributeValues={
                ":other": {"S": "someone-else"},
                ":later": {"N": str(time.time_ns() // 1_000_000 + 600_000)},
            },
        )
        assert wait_for(lambda: set(running.lag_ms()) == {"shardId-000000000001"})
        handled.shards.clear()
        put(stack, 0, 300)
        time.sleep(1.0)

    # THEN it reads only the shard it still holds
    assert handled.shards == {"shardId-000000000001"}


# --- the Firehose emulation ----------------------------------------------------------------------


@dataclass
class Lake:
    bucket: str
    emulation_args: dict[str, Any]


@pytest.fixture
def lake(stack: DeployedStack, unique: str) -> Lake:
    bucket = f"leases-lake-{unique}"
    aws.client("s3").create_bucket(Bucket=bucket)
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        parameters={"StreamArn": stack.stream_arn, "BucketName": bucket},
        outputs={"BucketName": bucket, "BucketArn": f"arn:aws:s3:::{bucket}"},
    )
    # No transform: what is checkpointed when depends only on the S3 buffers.
    settings = replace(
        delivery_stream_settings(template, resolver),
        processor=None,
        dynamic_partitioning=False,
        prefix="raw/",
        error_output_prefix="errors/",
        buffer_interval_s=0.5,
        compression_format="UNCOMPRESSED",
    )
    return Lake(bucket, {"settings": settings, "handler": None, "region": stack.region})


def firehose(stack: DeployedStack, lake: Lake, lease: DynamoDBLeases) -> FirehoseEmulation:
    return FirehoseEmulation(
        **lake.emulation_args, poll_interval_s=0.02, shard_refresh_s=0.2, leases=lease
    )


def lake_payloads(lake: Lake) -> list[str]:
    return [
        line.decode() for _, body in object_bodies(lake.bucket, "raw/") for line in body.split()
    ]


def test_a_restarted_delivery_stream_resumes_after_what_is_in_s3(
    stack: DeployedStack, lake: Lake
) -> None:
    # GIVEN 600 records delivered to S3 by a delivery stream that then stops
    sent = put(stack, 0, 600)
    with firehose(stack, lake, leases(stack, "firehose/test")) as first:
        assert first.wait_caught_up(WAIT_S, flush=True)

    # WHEN 400 more are put and another one starts
    sent += put(stack, 600, 400)
    with firehose(stack, lake, leases(stack, "firehose/test")) as second:
        assert second.wait_caught_up(WAIT_S, flush=True)
        delivered = second.stats.records_delivered

    # THEN the second delivered the new ones only, and S3 holds each record once
    assert delivered == 400
    assert sorted(lake_payloads(lake)) == sorted(sent)


def test_a_delivery_stream_checkpoints_only_what_is_in_s3(stack: DeployedStack, lake: Lake) -> None:
    # GIVEN records read into buffers that S3 refuses to take
    lease = leases(stack, "firehose/test")
    s3 = aws.client("s3")
    refusing = FirehoseEmulation(
        **{**lake.emulation_args, "s3": _Refusing(s3)},
        poll_interval_s=0.02,
        retry_delay_s=0.05,
        leases=lease,
    )
    sent = put(stack, 0, 200)
    refusing.start()
    assert wait_for(lambda: refusing.stats.records_in >= 200)
    time.sleep(1.0)
    checkpoints = _checkpoints(stack, lease)
    refusing.stop(timeout=1)

    # THEN nothing was checkpointed, so the next delivery stream delivers all 200
    assert checkpoints == {}
    with firehose(stack, lake, leases(stack, "firehose/test")) as second:
        assert second.wait_caught_up(WAIT_S, flush=True)
    assert sorted(lake_payloads(lake)) == sorted(sent)


class _Refusing:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def put_object(self, **kwargs: Any) -> Any:
        raise RuntimeError("S3 is down")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def _checkpoints(stack: DeployedStack, lease: DynamoDBLeases) -> dict[str, str]:
    items = aws.client("dynamodb").scan(TableName=stack.checkpoint_table)["Items"]
    return {
        item["leaseKey"]["S"]: item["checkpoint"]["S"]
        for item in items
        if item["leaseKey"]["S"].startswith(lease.consumer) and "checkpoint" in item
    }
