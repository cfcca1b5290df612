"""KinesisPublisher against a fake client: batch limits, partial failures, budget, backpressure."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from producer.publisher import KinesisPublisher, record_size
from tests.unit.test_aggregation import kinesis_shard, shard_ranges
from tradestream import kpl
from tradestream.aggregation import LIST_SHARDS_MIN_INTERVAL_SECONDS, ShardRouter
from tradestream.limits import KINESIS_MAX_RECORD_BYTES, KINESIS_PUT_RECORDS_MAX_BYTES
from tradestream.retry import Backoff, RetryBudget
from tradestream.trade import RawTrade, Trade, stamp

T0 = 1_700_000_000_000


def trades(n: int, symbol: str = "AAPL", padding: int = 0) -> list[Trade]:
    """n distinct trades; ``padding`` characters of condition code make each record bigger."""
    conditions = ("x" * padding,) if padding else None
    # Prices 100.0, 101.0...: every record of a call to trades() has the same size.
    raws = [RawTrade(s=symbol, p=100.0 + i, v=1, t=T0 + i, c=conditions) for i in range(n)]
    return stamp(raws, T0)


def sized(n: int, size: int) -> list[Trade]:
    """n distinct trades whose record size (data + partition key) is exactly ``size`` bytes."""
    padding = 1 + size - record_size(trades(1, padding=1)[0])
    return trades(n, padding=padding)


def padded_to(size: int) -> Trade:
    return sized(1, size)[0]


class FakeKinesis:
    """Records every PutRecords call; ``script`` decides each call's outcome in turn."""

    def __init__(self, script: list[Any] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.script = list(script or [])
        self.stored: list[bytes] = []
        self.gate: asyncio.Event | None = None  # when set, calls wait for it
        self.called = asyncio.Event()

    async def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        step = self.script.pop(0) if self.script else None
        if isinstance(step, BaseException):
            raise step
        failed = step(Records) if callable(step) else set()
        results: list[dict[str, Any]] = []
        for i, record in enumerate(Records):
            if i in failed:
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.stored.append(record["Data"])
                results.append({"SequenceNumber": str(len(self.stored)), "ShardId": "s-0"})
        return {"FailedRecordCount": len(failed), "Records": results}

    def stored_ids(self) -> list[str]:
        return [json.loads(d)["id"] for d in self.stored]


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecords",
    )


def publisher(
    client: FakeKinesis, *, max_put_attempts: int = 20, **kwargs: Any
) -> KinesisPublisher:
    retry = RetryBudget(max_put_attempts, Backoff(0.001, 0.002, random.Random(1)))
    return KinesisPublisher(client, "trades", retry=retry, **{"linger_ms": 0, **kwargs})


async def publish(pub: KinesisPublisher, items: list[Trade], deadline: float = 5) -> None:
    pub.start()
    for item in items:
        await pub.put(item)
    await pub.close(deadline_seconds=deadline)


async def test_batches_hold_at_most_500_records() -> None:
    # GIVEN 1,234 small trades buffered before the sender runs
    client = FakeKinesis()
    pub = publisher(client, buffer_max_records=5000)
    # WHEN they are published
    await publish(pub, trades(1234))
    # THEN three calls of 500, 500 and 234 records carried them, partition key = symbol
    assert [len(c) for c in client.calls] == [500, 500, 234]
    assert {r["PartitionKey"] for c in client.calls for r in c} == {"AAPL"}
    assert (pub.stats.published, pub.stats.put_calls, pub.stats.buffered) == (1234, 3, 0)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(700_000, [7, 7, 6]), (KINESIS_MAX_RECORD_BYTES, [5, 5, 5, 5, 0])],
    ids=["700kB", "1MiB"],
)
async def test_batches_hold_at_most_5_mib_counting_partition_keys(
    size: int, expected: list[int]
) -> None:
    # GIVEN 20 records of `size` bytes each, data plus partition key
    items = sized(20, size)
    assert {record_size(t) for t in items} == {size}
    client = FakeKinesis()
    pub = publisher(client)
    # WHEN published
    await publish(pub, items)
    # THEN each call is filled up to 5 MiB (5 x 1 MiB fits exactly), never beyond
    assert [len(c) for c in client.calls] == [n for n in expected if n]
    for call in client.calls:
        assert (
            sum(len(r["Data"]) + len(r["PartitionKey"]) for r in call)
            <= KINESIS_PUT_RECORDS_MAX_BYTES
        )
    assert pub.stats.published == 20


async def test_a_record_above_1_mib_is_dropped_by_policy_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN one record of exactly 1 MiB and one of 1 MiB + 1 byte, among small ones
    at_limit, above = padded_to(KINESIS_MAX_RECORD_BYTES), padded_to(KINESIS_MAX_RECORD_BYTES + 1)
    assert (record_size(at_limit), record_size(above)) == (1_048_576, 1_048_577)
    client = FakeKinesis()
    pub = publisher(client)
    # WHEN all are published
    pub.start()
    accepted = [await pub.put(t) for t in [*trades(3), at_limit, above]]
    await pub.close(deadline_seconds=5)
    # THEN the oversize one is refused, counted and logged with its id; the rest go out
    assert accepted == [True, True, True, True, False]
    assert (pub.stats.dropped_by_policy, pub.stats.received, pub.stats.published) == (1, 4, 4)
    assert above.id not in client.stored_ids()
    assert at_limit.id in client.stored_ids()
    dropped = [r for r in caplog.records if r.message.startswith("trade dropped by policy")]
    assert [r.__dict__["trade_id"] for r in dropped] == [above.id]


async def test_only_failed_entries_are_resent() -> None:
    # GIVEN a stream failing entries 3, 10 and 499 of the first call, then nothing
    client = FakeKinesis(script=[lambda records: {3, 10, 499}])
    pub = publisher(client)
    items = trades(500)
    # WHEN 500 trades are published
    await publish(pub, items)
    # THEN the second call carries exactly the three failed ones
    assert [len(c) for c in client.calls] == [500, 3]
    resent = [json.loads(r["Data"])["id"] for r in client.calls[1]]
    assert resent == [items[3].id, items[10].id, items[499].id]
    # AND every trade is stored exactly once and the counters reconcile
    assert sorted(client.stored_ids()) == sorted(t.id for t in items)
    assert (pub.stats.retried, pub.stats.published, pub.stats.failed) == (3, 500, 0)


async def test_resends_are_topped_up_with_new_records() -> None:
    # GIVEN 2 failed entries in a first call of 500, with 300 more trades waiting
    client = FakeKinesis(script=[lambda records: {0, 1}])
    pub = publisher(client)
    items = trades(800)
    # WHEN published
    await publish(pub, items)
    # THEN the resend rides with new records: 500, then 2 resent + 298 new... in one call
    assert [len(c) for c in client.calls] == [500, 302]
    assert [json.loads(r["Data"])["id"] for r in client.calls[1][:2]] == [items[0].id, items[1].id]
    assert len(set(client.stored_ids())) == 800 == pub.stats.published


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException", 400),
        client_error("ThrottlingException", 400),
        client_error("InternalFailure", 500),
        client_error("SomethingNew", 503),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=["throughput", "throttling", "internal", "5xx", "connection"],
)
async def test_whole_call_errors_are_retried(error: BaseException) -> None:
    # GIVEN a stream whose first two calls fail as a whole
    client = FakeKinesis(script=[error, error])
    pub = publisher(client)
    # WHEN 10 trades are published
    await publish(pub, trades(10))
    # THEN the same batch went three times and everything arrived once
    assert [len(c) for c in client.calls] == [10, 10, 10]
    assert (pub.stats.call_errors, pub.stats.retried, pub.stats.published) == (2, 20, 10)
    assert len(client.stored) == 10


async def test_a_non_retryable_error_stops_the_publisher_and_nothing_is_silently_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a stream that does not exist
    client = FakeKinesis(script=[client_error("ResourceNotFoundException", 400)])
    pub = publisher(client)
    # WHEN 5 trades are published
    await publish(pub, trades(5))
    # THEN the publisher stops with AWS's code and advice, after one call
    assert pub.error is not None
    assert pub.error.code == "ResourceNotFoundException"
    assert "create it or set STREAM_NAME" in str(pub.error)
    assert len(client.calls) == 1
    # AND the 5 trades are counted failed and logged with their records
    assert (pub.stats.failed, pub.stats.published, pub.stats.buffered) == (5, 0, 0)
    logged = [
        r.__dict__["record"]["id"] for r in caplog.records if r.message == "trade not published"
    ]
    assert sorted(logged) == sorted(t.id for t in trades(5))


async def test_missing_credentials_stop_the_publisher_with_a_readable_error() -> None:
    # GIVEN a client that cannot sign requests
    client = FakeKinesis(script=[NoCredentialsError()])
    pub = publisher(client)
    # WHEN 2 trades are published
    await publish(pub, trades(2))
    # THEN the publisher stops, says why, and accounts for both trades
    assert pub.error is not None
    assert pub.error.code == "NoCredentialsError"
    assert "Unable to locate credentials" in str(pub.error)
    assert (pub.stats.failed, pub.stats.received) == (2, 2)


async def test_entries_that_exhaust_the_budget_are_failed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a stream that always fails the first entry of every call
    items = trades(4)
    client = FakeKinesis(script=[lambda records: {0}] * 10)
    pub = publisher(client, max_put_attempts=3)
    # WHEN published
    await publish(pub, items)
    # THEN the first trade was tried 3 times, then failed and logged with its record
    assert [len(c) for c in client.calls] == [4, 1, 1]
    assert (pub.stats.failed, pub.stats.published, pub.stats.retried) == (1, 3, 2)
    [logged] = [r.__dict__ for r in caplog.records if r.message == "trade not published"]
    assert logged["record"] == json.loads(items[0].to_record())
    assert logged["reason"] == "ProvisionedThroughputExceededException after 3 attempts"
    assert pub.stats.received == pub.stats.published + pub.stats.failed


async def test_an_entry_refused_with_a_code_no_resend_fixes_is_failed_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a stream whose KMS key is disabled for the first entry of a call (HTTP 200)
    class KmsDisabledForFirst(FakeKinesis):
        async def put_records(
            self, StreamName: str, Records: list[dict[str, Any]]
        ) -> dict[str, Any]:
            answer = await super().put_records(StreamName, Records[1:])
            refused = {"ErrorCode": "KMSDisabledException", "ErrorMessage": "disabled"}
            return {"FailedRecordCount": 1, "Records": [refused, *answer["Records"]]}

    client = KmsDisabledForFirst()
    pub = publisher(client)
    items = trades(3)
    # WHEN published
    await publish(pub, items)
    # THEN the refused trade was not sent again but failed and logged with its code
    assert len(client.calls) == 1
    assert (pub.stats.failed, pub.stats.published, pub.stats.retried) == (1, 2, 0)
    [logged] = [r.__dict__ for r in caplog.records if r.message == "trade not published"]
    assert logged["record"]["id"] == items[0].id
    assert logged["reason"].startswith("KMSDisabledException")


async def test_full_buffer_blocks_put_and_memory_stays_bounded() -> None:
    # GIVEN a stream that never answers and a buffer of 50 records
    client = FakeKinesis()
    client.gate = asyncio.Event()
    pub = publisher(client, buffer_max_records=50, batch_max_records=20)
    pub.start()
    items = trades(80)
    accepted = 0

    async def feed() -> None:
        nonlocal accepted
        for item in items:
            await pub.put(item)
            accepted += 1

    # WHEN a source keeps putting for a while
    feeder = asyncio.create_task(feed())
    await asyncio.sleep(0.2)
    # THEN exactly 50 were accepted and the source is blocked
    assert accepted == 50
    assert not feeder.done()
    assert pub.stats.buffered == pub.stats.buffered_peak == 50
    # WHEN the stream answers again
    client.gate.set()
    await asyncio.wait_for(feeder, 5)
    await pub.close(deadline_seconds=5)
    # THEN all 80 went through and the buffer never held more than 50
    assert pub.stats.published == 80
    assert pub.stats.buffered_peak == 50


async def test_linger_waits_for_more_records_but_a_full_batch_goes_at_once() -> None:
    # GIVEN a linger of 2 s and batches of 10
    client = FakeKinesis()
    pub = publisher(client, linger_ms=2000, batch_max_records=10)
    pub.start()
    # WHEN 3 trades arrive
    for item in trades(3):
        await pub.put(item)
    await asyncio.sleep(0.1)
    # THEN nothing is sent yet
    assert client.calls == []
    # WHEN the batch fills up
    for item in trades(10, symbol="MSFT")[:7]:
        await pub.put(item)
    # THEN it goes at once, well before the linger ends
    await asyncio.wait_for(client.called.wait(), 1)
    assert [len(c) for c in client.calls] == [10]
    await pub.close(deadline_seconds=5)


async def test_close_fails_what_the_deadline_leaves_unsent() -> None:
    # GIVEN a stream that hangs, with 30 trades buffered
    client = FakeKinesis()
    client.gate = asyncio.Event()
    pub = publisher(client, batch_max_records=10)
    pub.start()
    for item in trades(30):
        await pub.put(item)
    # WHEN closed with a 0.3 s deadline
    loop = asyncio.get_running_loop()
    began = loop.time()
    await pub.close(deadline_seconds=0.3)
    # THEN it returned on time and every trade is counted failed (in flight included)
    assert 0.25 <= loop.time() - began < 1.5
    assert (pub.stats.failed, pub.stats.published, pub.stats.buffered) == (30, 0, 0)
    with pytest.raises(Exception, match="closed"):
        await pub.put(trades(1)[0])


# -- with aggregation (AGGREGATION=true) ---------------------------------------------------------

AGGREGATE_BYTES = 50 * 1024
SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")


def mixed_trades(n: int) -> list[Trade]:
    raws = [
        RawTrade(s=SYMBOLS[i % len(SYMBOLS)], p=100.0 + i, v=1, t=T0 + i, c=None) for i in range(n)
    ]
    return stamp(raws, T0)


class ShardedKinesis(FakeKinesis):
    """FakeKinesis with ``shards`` shards: ListShards answers, and each accepted record is put
    on the shard its partition key hashes to (``moved`` pretends the stream was resharded)."""

    def __init__(self, shards: int = 2, script: list[Any] | None = None) -> None:
        super().__init__(script)
        self.shards = shard_ranges(shards)
        self.list_calls = 0
        self.list_error: BaseException | None = None
        self.moved = False
        self.kinesis_records: list[tuple[str, bytes, str]] = []  # (key, data, shard) accepted

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.list_calls += 1
        if self.list_error is not None:
            raise self.list_error
        return {"Shards": self.shards}

    async def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        answer = await super().put_records(StreamName, Records)
        for record, result in zip(Records, answer["Records"], strict=True):
            if "ShardId" in result:
                shard = kinesis_shard(record["PartitionKey"], self.shards)
                result["ShardId"] = "shardId-999999999999" if self.moved else shard
                self.kinesis_records.append((record["PartitionKey"], record["Data"], shard))
        return answer

    def trade_ids(self) -> list[str]:
        return [
            json.loads(user.data)["id"]
            for key, data, _ in self.kinesis_records
            for user in kpl.deaggregate(data, key)
        ]


def aggregating(client: FakeKinesis, **kwargs: Any) -> KinesisPublisher:
    router = ShardRouter(client, "trades") if hasattr(client, "list_shards") else None
    return publisher(client, aggregation_max_bytes=AGGREGATE_BYTES, shards=router, **kwargs)


async def test_aggregation_packs_trades_per_shard_and_counts_kinesis_records_apart() -> None:
    # GIVEN 3,000 trades of 4 symbols buffered before the sender runs, a stream of 2 shards
    client = ShardedKinesis(shards=2)
    pub = aggregating(client, buffer_max_records=5000)
    items = mixed_trades(3000)
    # WHEN they are published with aggregation
    await publish(pub, items)
    # THEN every trade is in the stream exactly once, inside aggregates
    assert sorted(client.trade_ids()) == sorted(t.id for t in items)
    assert all(kpl.is_aggregate(data) for _, data, _ in client.kinesis_records)
    # AND each aggregate holds trades of its own shard only, under its first trade's symbol
    for key, data, shard in client.kinesis_records:
        users = kpl.deaggregate(data, key)
        assert users[0].partition_key == key
        assert {kinesis_shard(u.partition_key, client.shards) for u in users} == {shard}
    # AND trades and Kinesis records are counted apart, and reconcile
    stats = pub.stats
    assert stats.kinesis_records_put == stats.aggregates_put == len(client.kinesis_records)
    assert stats.received == stats.published == 3000
    assert 3000 / stats.kinesis_records_put > 100
    assert stats.put_calls == len(client.calls) == 1
    assert client.list_calls == 1


async def test_a_refused_aggregate_is_resent_whole_as_the_same_bytes() -> None:
    # GIVEN a stream refusing the first Kinesis record of the first call
    client = ShardedKinesis(shards=2, script=[lambda records: {0}])
    pub = aggregating(client)
    items = mixed_trades(1000)
    # WHEN 1,000 trades are published
    await publish(pub, items)
    # THEN the second call carries that very record, byte for byte, and nothing else
    first, second = client.calls
    assert second == [first[0]]
    refused = kpl.deaggregate(first[0]["Data"], first[0]["PartitionKey"])
    # AND the resend is counted once as a Kinesis record and once per trade it carries
    stats = pub.stats
    assert (stats.kinesis_records_retried, stats.retried) == (1, len(refused))
    assert stats.kinesis_records_put == len(first)
    assert (stats.published, stats.failed) == (1000, 0)
    assert sorted(client.trade_ids()) == sorted(t.id for t in items)


async def test_an_aggregate_that_exhausts_its_budget_fails_each_of_its_trades_with_its_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a stream that always refuses the first Kinesis record of a call, and 3 attempts
    client = ShardedKinesis(shards=1, script=[lambda records: {0}] * 10)
    pub = aggregating(client, max_put_attempts=3)
    items = mixed_trades(40)
    # WHEN published
    await publish(pub, items)
    # THEN the one aggregate was tried 3 times, then each of its 40 trades failed and was logged
    assert [len(c) for c in client.calls] == [1, 1, 1]
    assert len({c[0]["Data"] for c in client.calls}) == 1
    logged = [r.__dict__ for r in caplog.records if r.message == "trade not published"]
    assert [entry["record"] for entry in logged] == [json.loads(t.to_record()) for t in items]
    assert {entry["reason"] for entry in logged} == {
        "ProvisionedThroughputExceededException after 3 attempts"
    }
    stats = pub.stats
    assert (stats.failed, stats.published, stats.kinesis_records_retried) == (40, 0, 2)
    assert stats.received == stats.published + stats.failed + stats.buffered


async def test_an_answer_on_another_shard_than_predicted_reads_the_shards_again() -> None:
    # GIVEN a stream whose answers name a shard the map does not have (it was resharded)
    client = ShardedKinesis(shards=2)
    client.moved = True
    pub = aggregating(client, linger_ms=0)
    pub.start()
    # WHEN trades are published in calls more than a second apart
    await pub.put(mixed_trades(1)[0])
    await asyncio.wait_for(client.called.wait(), 5)
    assert client.list_calls == 1
    await asyncio.sleep(LIST_SHARDS_MIN_INTERVAL_SECONDS + 0.1)
    client.called.clear()
    await pub.put(mixed_trades(2)[1])
    await asyncio.wait_for(client.called.wait(), 5)
    await pub.close(deadline_seconds=5)
    # THEN the shards were listed again before the second call
    assert client.list_calls == 2


async def test_a_refused_list_shards_packs_per_symbol(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a producer role without kinesis:ListShards
    client = ShardedKinesis(shards=2)
    client.list_error = client_error("AccessDeniedException", 400)
    pub = aggregating(client)
    # WHEN 2,000 trades of 4 symbols are published
    await publish(pub, mixed_trades(2000))
    # THEN each aggregate holds one symbol, and all arrived
    for key, data, _ in client.kinesis_records:
        assert {u.partition_key for u in kpl.deaggregate(data, key)} == {key}
    assert {key for key, _, _ in client.kinesis_records} == set(SYMBOLS)
    assert sorted(client.trade_ids()) == sorted(t.id for t in mixed_trades(2000))
    assert any(r.message.startswith("ListShards failed") for r in caplog.records)


async def test_with_aggregation_a_full_buffer_sends_at_once_without_waiting_the_linger() -> None:
    # GIVEN a linger of 5 s and a buffer of 50 trades (far from filling a 5 MiB call)
    client = ShardedKinesis(shards=1)
    pub = aggregating(client, linger_ms=5000, buffer_max_records=50)
    pub.start()
    # WHEN 50 trades fill the buffer
    for item in mixed_trades(50):
        await pub.put(item)
    # THEN the call goes at once, carrying all 50
    await asyncio.wait_for(client.called.wait(), 2)
    await pub.close(deadline_seconds=5)
    assert sum(len(kpl.deaggregate(r["Data"], r["PartitionKey"])) for r in client.calls[0]) == 50
