"""Packing user records into the Kinesis records of a call (tradestream.aggregation): per shard
or per partition key, within the target size, the 1 MiB record and the call's limits; the shard
map from ListShards and when it is read again."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from aws_kinesis_agg.deaggregator import deaggregate_records
from botocore.exceptions import ClientError

from tests.unit.test_kpl import lambda_event
from tradestream import kpl
from tradestream.aggregation import (
    HASH_KEY_SPACE,
    LIST_SHARDS_MIN_INTERVAL_SECONDS,
    LIST_SHARDS_RETRY_SECONDS,
    KinesisRecord,
    Packer,
    ShardMap,
    ShardRouter,
)
from tradestream.kinesis import Backlog, BatchLimits, record_size
from tradestream.limits import KINESIS_MAX_RECORD_BYTES, KINESIS_PUT_RECORDS_MAX_BYTES, MiB

SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT", "TSLA", "NVDA", "IBM", "ORCL")


@dataclass
class User:
    key: str
    data: bytes
    size: int = 0

    def __post_init__(self) -> None:
        self.size = record_size(self.data, self.key)


def users(n: int, keys: tuple[str, ...] = SYMBOLS, size: int = 120) -> list[User]:
    return [User(keys[i % len(keys)], b'{"n":%d}' % i + b" " * (size - 12)) for i in range(n)]


def backlog_of(items: list[User]) -> Backlog[User]:
    backlog: Backlog[User] = Backlog()
    backlog.extend(items)
    return backlog


def shard_ranges(count: int) -> list[dict[str, Any]]:
    """ListShards' Shards for ``count`` shards splitting the hash key space evenly."""
    step = HASH_KEY_SPACE // count
    return [
        {
            "ShardId": f"shardId-{i:012d}",
            "HashKeyRange": {
                "StartingHashKey": str(i * step),
                "EndingHashKey": str(HASH_KEY_SPACE - 1 if i == count - 1 else (i + 1) * step - 1),
            },
            "SequenceNumberRange": {"StartingSequenceNumber": "1"},
        }
        for i in range(count)
    ]


def kinesis_shard(key: str, shards: list[dict[str, Any]]) -> str:
    """The shard Kinesis puts ``key`` on, by its documented rule (MD5, 128-bit, in the range)."""
    hashed = int(hashlib.md5(key.encode()).hexdigest(), 16)
    [shard] = [
        s["ShardId"]
        for s in shards
        if int(s["HashKeyRange"]["StartingHashKey"])
        <= hashed
        <= int(s["HashKeyRange"]["EndingHashKey"])
    ]
    return shard


def router_with(shards: list[dict[str, Any]]) -> ShardRouter:
    router = ShardRouter(None, "trades")
    router.shards = ShardMap.from_list_shards(shards)
    return router


def unpacked(record: KinesisRecord[User]) -> list[tuple[str, bytes]]:
    return [(u.partition_key, u.data) for u in kpl.deaggregate(record.data, record.key)]


def test_a_partition_key_maps_to_the_shard_kinesis_puts_it_on() -> None:
    # GIVEN four shards, the last one closed by a split into two children
    shards = shard_ranges(3)
    closed = {
        **shards[2],
        "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
    }
    start, end = (int(closed["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    middle = (start + end) // 2
    children = [
        {**shards[2], "ShardId": f"shardId-00000000000{n}", "HashKeyRange": hash_range}
        for n, hash_range in (
            (3, {"StartingHashKey": str(start), "EndingHashKey": str(middle)}),
            (4, {"StartingHashKey": str(middle + 1), "EndingHashKey": str(end)}),
        )
    ]
    listed = [*shards[:2], closed, *children]
    shard_map = ShardMap.from_list_shards(listed)
    # THEN only open shards count, and every key lands where Kinesis' rule puts it
    assert len(shard_map) == 4
    open_shards = [*shards[:2], *children]
    keys = [*SYMBOLS, *(f"SYM{i}" for i in range(200))]
    assert {k: shard_map.shard_of(k) for k in keys} == {
        k: kinesis_shard(k, open_shards) for k in keys
    }
    assert {shard_map.shard_of(k) for k in keys} == {s["ShardId"] for s in open_shards}


def test_aggregates_are_packed_per_shard_under_their_first_user_records_key() -> None:
    # GIVEN 3,000 user records of 8 symbols on a stream of 2 shards
    shards = shard_ranges(2)
    items = users(3000)
    packer: Packer[User] = Packer(50 * 1024, router_with(shards))
    # WHEN a call is packed
    batch, dropped = packer.pack(backlog_of(items), BatchLimits())
    # THEN every user record of an aggregate maps to the shard the aggregate is put on
    assert dropped == []
    assert all(r.aggregated for r in batch)
    for record in batch:
        assert record.key == record.users[0].key
        assert record.shard == kinesis_shard(record.key, shards)
        assert {kinesis_shard(u.key, shards) for u in record.users} == {record.shard}
        assert unpacked(record) == [(u.key, u.data) for u in record.users]
    # AND a shard's aggregates hold its user records in their order, each once
    for shard in ("shardId-000000000000", "shardId-000000000001"):
        expected = [(u.key, u.data) for u in items if kinesis_shard(u.key, shards) == shard]
        got = [pair for r in batch if r.shard == shard for pair in unpacked(r)]
        assert got == expected
    # AND several keys share an aggregate (8 symbols, 2 shards)
    assert max(len({u.key for u in r.users}) for r in batch) > 1


def test_without_a_shard_map_aggregates_are_packed_per_partition_key() -> None:
    # GIVEN a router that has no shard map (no client, or ListShards refused)
    packer: Packer[User] = Packer(50 * 1024, ShardRouter(None, "trades"))
    # WHEN 2,000 user records of 8 symbols are packed
    batch, _ = packer.pack(backlog_of(users(2000)), BatchLimits())
    # THEN each Kinesis record carries one partition key only, and predicts no shard
    assert all({u.key for u in r.users} == {r.key} for r in batch)
    assert {r.shard for r in batch} == {""}
    assert sum(len(r.users) for r in batch) == 2000


@pytest.mark.parametrize("target", [1024, 5000, 50 * 1024, KINESIS_MAX_RECORD_BYTES])
def test_an_aggregate_stays_within_its_target_and_is_its_exact_kinesis_size(target: int) -> None:
    # GIVEN user records of 1,000 bytes, 2,000 of them under one key
    items = users(2000, keys=("AAPL",), size=1000)
    packer: Packer[User] = Packer(target)
    # WHEN packed
    batch, _ = packer.pack(backlog_of(items), BatchLimits())
    # THEN no aggregate passes the target, and each is what Kinesis counts (data + key)
    for record in batch:
        assert record.size <= target
        assert record.size == len(record.data) + len(record.key.encode())
    # AND each but the last was closed only because the next record did not fit
    for record in batch[:-1]:
        if record.aggregated:
            assert record.size + 1000 > target
    # AND the call stays within 5 MiB
    assert sum(r.size for r in batch) <= KINESIS_PUT_RECORDS_MAX_BYTES


def test_a_user_record_too_big_for_an_aggregate_goes_alone_as_a_plain_record() -> None:
    # GIVEN a 60 KB record among small ones, a 50 KiB target; and a record of exactly 1 MiB
    small = users(10, keys=("AAPL",))
    big = User("AAPL", b"b" * 60_000)
    at_limit = User("AAPL", b"m" * (KINESIS_MAX_RECORD_BYTES - 4))
    assert at_limit.size == KINESIS_MAX_RECORD_BYTES
    items = [*small[:5], big, *small[5:], at_limit]
    packer: Packer[User] = Packer(50 * 1024)
    # WHEN packed into one call
    batch, _ = packer.pack(backlog_of(items), BatchLimits())
    # THEN the big ones are plain Kinesis records holding exactly their data
    plain = [r for r in batch if not r.aggregated]
    assert [(r.data, r.size) for r in plain] == [
        (big.data, big.size),
        (at_limit.data, KINESIS_MAX_RECORD_BYTES),
    ]
    assert not any(kpl.is_aggregate(r.data) for r in plain)
    # AND the small ones share one aggregate, in order
    [aggregate] = [r for r in batch if r.aggregated]
    assert aggregate.users == small


def test_an_aggregate_that_got_one_user_record_goes_plain() -> None:
    # GIVEN one record of each of three keys, packed per key
    items = users(3, keys=("AAPL", "MSFT", "AMZN"))
    batch, _ = Packer[User](50 * 1024).pack(backlog_of(items), BatchLimits())
    # THEN each is sent as itself, as the KPL sends a lone user record
    assert [(r.data, r.key, r.size) for r in batch] == [(u.data, u.key, u.size) for u in items]


def test_a_call_holds_at_most_500_kinesis_records() -> None:
    # GIVEN 1,200 partition keys with two user records each, packed per key
    items = [User(f"K{i // 2}", b"x" * 100) for i in range(2400)]
    backlog = backlog_of(items)
    packer: Packer[User] = Packer(50 * 1024)
    # WHEN calls are packed until nothing waits
    calls = []
    while backlog.entries:
        calls.append(packer.pack(backlog, BatchLimits())[0])
    # THEN each holds at most 500 records, and every user record went exactly once
    assert [len(c) for c in calls] == [500, 500, 200]
    assert sum(len(r.users) for c in calls for r in c) == 2400
    assert (len(backlog), backlog.size) == (0, 0)


def test_a_call_holds_at_most_5_mib_resends_included() -> None:
    # GIVEN three 1 MiB resends already in the call, and 40,000 small user records waiting
    resends = [KinesisRecord(b"r", "AAPL", MiB, []) for _ in range(3)]
    backlog = backlog_of(users(40_000))
    packer: Packer[User] = Packer(50 * 1024)
    # WHEN the call is topped up
    batch, _ = packer.pack(backlog, BatchLimits(), list(resends))
    # THEN the resends lead, and the call stops at 5 MiB; what is left waits, counted
    assert batch[:3] == resends
    total = sum(r.size for r in batch)
    assert 5 * MiB - 60 * 1024 < total <= 5 * MiB
    packed = sum(len(r.users) for r in batch)
    assert len(backlog) == 40_000 - packed
    assert backlog.size == sum(u.size for u in backlog.entries)


def test_without_aggregation_each_user_record_is_a_kinesis_record_of_its_own() -> None:
    # GIVEN 600 user records and no aggregation
    items = users(600)
    packer: Packer[User] = Packer(None)
    # WHEN a call is packed THEN it holds 500 plain records, one per user record, in order
    batch, _ = packer.pack(backlog_of(items), BatchLimits())
    assert [(r.data, r.key, r.users) for r in batch] == [(u.data, u.key, [u]) for u in items[:500]]


@pytest.mark.parametrize("target", [None, 50 * 1024], ids=["plain", "aggregated"])
def test_user_records_refused_by_keep_are_handed_back_not_sent(target: int | None) -> None:
    # GIVEN 100 user records of which every third is no longer wanted
    items = users(100)
    unwanted = {id(u) for u in items[::3]}
    backlog = backlog_of(items)
    # WHEN packed with that filter
    batch, dropped = Packer[User](target).pack(
        backlog, BatchLimits(), keep=lambda u: id(u) not in unwanted
    )
    # THEN the unwanted come back apart, the rest are sent, and nothing waits any more
    assert [id(u) for u in dropped] == [id(u) for u in items[::3]]
    assert sorted(id(u) for r in batch for u in r.users) == sorted(
        id(u) for u in items if id(u) not in unwanted
    )
    assert (len(backlog), backlog.size) == (0, 0)


def test_aws_kinesis_agg_reads_every_packed_record() -> None:
    # GIVEN a call packed per shard of 4 from 5,000 user records
    shards = shard_ranges(4)
    items = users(5000)
    batch, _ = Packer[User](50 * 1024, router_with(shards)).pack(backlog_of(items), BatchLimits())
    # WHEN aws-kinesis-agg's deaggregator reads the Kinesis records
    out = deaggregate_records([lambda_event(r.data, r.key) for r in batch])
    # THEN it finds every user record once
    read = sorted(
        (r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in out
    )
    assert read == sorted((u.key, u.data) for u in items)


def test_the_target_size_is_refused_beyond_1_mib_and_below_1_kib() -> None:
    for bad in (KINESIS_MAX_RECORD_BYTES + 1, 1023, 0):
        with pytest.raises(ValueError, match="1 MiB"):
            Packer(bad)


# -- the shard map and when it is read ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ListShards:
    """ListShards' answers in pages of two, or a scripted failure."""

    def __init__(self, shards: list[dict[str, Any]], error: Exception | None = None) -> None:
        self.shards = shards
        self.error = error
        self.calls: list[dict[str, Any]] = []

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        start = int(kwargs.get("NextToken", "0"))
        page: dict[str, Any] = {"Shards": self.shards[start : start + 2]}
        if start + 2 < len(self.shards):
            page["NextToken"] = str(start + 2)
        return page


async def test_the_shard_map_is_read_once_with_every_page() -> None:
    # GIVEN a stream of 5 shards, listed two a page
    client = ListShards(shard_ranges(5))
    router = ShardRouter(client, "trades", clock=Clock())
    # WHEN the router is asked twice
    await router.refresh_if_due()
    await router.refresh_if_due()
    # THEN it read all three pages once, and groups per shard
    assert client.calls == [{"StreamName": "trades"}, {"NextToken": "2"}, {"NextToken": "4"}]
    assert router.by_shard
    assert router.group("AAPL") == kinesis_shard("AAPL", shard_ranges(5))


async def test_a_refused_list_shards_falls_back_to_partition_keys_and_is_tried_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN ListShards refused (the role lacks kinesis:ListShards)
    denied = ClientError({"Error": {"Code": "AccessDeniedException"}}, "ListShards")
    client = ListShards(shard_ranges(2), error=denied)
    clock = Clock()
    router = ShardRouter(client, "trades", clock=clock)
    # WHEN asked
    await router.refresh_if_due()
    # THEN records group by partition key, and the warning names the code
    assert not router.by_shard
    assert router.group("AAPL") == "AAPL"
    [warning] = [r for r in caplog.records if r.message.startswith("ListShards failed")]
    assert warning.__dict__["code"] == "AccessDeniedException"
    # AND it is not asked again until the retry interval passed, then it is
    client.error = None
    clock.now += LIST_SHARDS_RETRY_SECONDS - 1
    await router.refresh_if_due()
    assert len(client.calls) == 1
    clock.now += 1
    await router.refresh_if_due()
    assert len(client.calls) == 2
    assert router.by_shard


async def test_a_record_put_on_another_shard_than_predicted_reads_the_map_again() -> None:
    # GIVEN a router with the map of 2 shards
    client = ListShards(shard_ranges(2))
    clock = Clock()
    router = ShardRouter(client, "trades", clock=clock)
    await router.refresh_if_due()
    record = KinesisRecord(b"x", "AAPL", 5, [], router.group("AAPL"))
    # WHEN an answer puts it where predicted THEN nothing is read again
    router.check([record], [{"ShardId": record.shard, "SequenceNumber": "1"}])
    clock.now += 60
    await router.refresh_if_due()
    assert len(client.calls) == 1
    # WHEN the stream was resharded to 4 and an answer shows another shard
    client.shards = shard_ranges(4)
    router.check([record], [{"ErrorCode": "ProvisionedThroughputExceededException"}])
    router.check([record], [{"ShardId": "shardId-000000000007", "SequenceNumber": "2"}])
    # THEN the map is read again (after the minimum interval) and has the new shards
    await router.refresh_if_due()
    assert len(client.calls) == 1
    clock.now += LIST_SHARDS_MIN_INTERVAL_SECONDS
    await router.refresh_if_due()
    assert [c for c in client.calls if "StreamName" in c] == [{"StreamName": "trades"}] * 2
    assert router.shards is not None
    assert len(router.shards) == 4
    assert router.group("AAPL") == kinesis_shard("AAPL", shard_ranges(4))
