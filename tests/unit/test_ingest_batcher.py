"""The Kinesis group-commit batcher, against a scripted in-memory PutRecords (no network)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError

from ingest_api.batcher import (
    BatcherClosedError,
    BatchPolicy,
    BufferFullError,
    KinesisBatcher,
)
from ingest_api.metrics import Metrics
from tradestream import kpl

THROTTLED = "ProvisionedThroughputExceededException"

# Decides one entry's fate: None for success, else an ErrorCode. Gets the data and its attempt.
EntryRule = Callable[[bytes, int], str | None]


class ScriptedKinesis:
    """Answers PutRecords like Kinesis, entry by entry, from a rule; records every call."""

    def __init__(
        self,
        rule: EntryRule | None = None,
        *,
        call_error: BaseException | None = None,
        hold: asyncio.Event | None = None,
    ) -> None:
        self.rule = rule or (lambda _data, _attempt: None)
        self.call_error = call_error
        self.hold = hold
        self.calls: list[list[bytes]] = []
        self.attempts: Counter[bytes] = Counter()
        self.stored: list[bytes] = []

    async def put_records(
        self, *, StreamName: str, Records: list[dict[str, Any]]
    ) -> dict[str, Any]:
        assert StreamName == "trades"
        self.calls.append([r["Data"] for r in Records])
        if self.hold is not None:
            await self.hold.wait()
        if self.call_error is not None:
            raise self.call_error
        results: list[dict[str, Any]] = []
        for record in Records:
            data = record["Data"]
            self.attempts[data] += 1
            code = self.rule(data, self.attempts[data])
            if code:
                results.append({"ErrorCode": code, "ErrorMessage": "scripted"})
            else:
                self.stored.append(data)
                results.append({"SequenceNumber": str(len(self.stored)), "ShardId": "s-0"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}


def _records(prefix: str, n: int, size: int = 0) -> list[tuple[str, str, bytes]]:
    return [(f"{prefix}-{i}", "AAPL", f"{prefix}-{i}".encode().ljust(size, b" ")) for i in range(n)]


def _policy(**overrides: Any) -> BatchPolicy:
    base: dict[str, Any] = {
        # Plain records unless a test asks for aggregation (the section below), whatever the
        # service's default: these tests count Kinesis records per call.
        "aggregation": False,
        "linger": 0.02,
        "concurrency": 4,
        "max_buffered": 10_000,
        "max_attempts": 4,
        "backoff_base": 0.001,
        "backoff_max": 0.004,
        "request_timeout": 5.0,
        "call_timeout": 2.0,
    }
    return BatchPolicy(**{**base, **overrides})


def _batcher(client: ScriptedKinesis, **overrides: Any) -> KinesisBatcher:
    batcher = KinesisBatcher(
        client, "trades", _policy(**overrides), metrics=Metrics(), rng=random.Random(1)
    )
    batcher.start()
    return batcher


def _metric(batcher: KinesisBatcher, name: str, labels: dict[str, str] | None = None) -> float:
    value = batcher.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


async def test_concurrent_requests_share_put_records_calls_of_at_most_500() -> None:
    # GIVEN a batcher with a linger long enough for 60 requests of 10 trades to arrive together
    client = ScriptedKinesis()
    batcher = _batcher(client)
    # WHEN they are put concurrently
    outcomes = await asyncio.gather(*(batcher.put(_records(f"r{n}", 10)) for n in range(60)))
    await batcher.close(1)
    # THEN two calls carried them: 500 then 100, and every request was fully accepted
    assert [len(call) for call in client.calls] == [500, 100]
    assert all(o.complete and len(o.accepted) == 10 for o in outcomes)
    assert outcomes[7].accepted == [f"r7-{i}" for i in range(10)]
    assert len(client.stored) == 600
    assert _metric(batcher, "ingest_kinesis_batch_records_count") == 2
    assert _metric(batcher, "ingest_trades_accepted_total") == 600


async def test_a_call_never_exceeds_5_mib() -> None:
    # GIVEN six records of 1,000,000 bytes (5 fit in 5 MiB with their keys, 6 do not)
    client = ScriptedKinesis()
    batcher = _batcher(client)
    # WHEN they are put in one request
    outcome = await batcher.put(_records("big", 6, size=1_000_000))
    await batcher.close(1)
    # THEN they left in two calls, 5 + 1
    assert [len(call) for call in client.calls] == [5, 1]
    assert outcome.complete


async def test_only_refused_entries_are_sent_again_until_accepted() -> None:
    # GIVEN Kinesis throttling two entries on their first and second attempt
    client = ScriptedKinesis(
        lambda data, attempt: THROTTLED if data in (b"t-3", b"t-7") and attempt < 3 else None
    )
    batcher = _batcher(client)
    # WHEN ten records are put
    outcome = await batcher.put(_records("t", 10))
    await batcher.close(1)
    # THEN the first call carried all ten and each resend carried only the two refused ones
    assert [sorted(call) for call in client.calls] == [
        sorted(f"t-{i}".encode() for i in range(10)),
        [b"t-3", b"t-7"],
        [b"t-3", b"t-7"],
    ]
    assert outcome.complete
    assert outcome.accepted == [f"t-{i}" for i in range(10)]
    assert Counter(client.stored) == Counter(f"t-{i}".encode() for i in range(10))
    assert _metric(batcher, "ingest_kinesis_entries_retried_total") == 4
    assert _metric(batcher, "ingest_kinesis_put_records_calls_total", {"outcome": "partial"}) == 2


async def test_budget_exhausted_reports_which_ids_are_durable() -> None:
    # GIVEN one entry that Kinesis always throttles and a budget of 4 attempts
    client = ScriptedKinesis(lambda data, _attempt: THROTTLED if data == b"x-1" else None)
    batcher = _batcher(client, max_attempts=4)
    # WHEN three records are put
    outcome = await batcher.put(_records("x", 3))
    await batcher.close(1)
    # THEN the request learns that x-0 and x-2 are durable and x-1 is not, after 4 attempts
    assert not outcome.complete
    assert outcome.accepted == ["x-0", "x-2"]
    assert outcome.not_accepted == ["x-1"]
    assert client.attempts[b"x-1"] == 4
    assert _metric(batcher, "ingest_trades_failed_total") == 1
    assert batcher.buffered == 0


async def test_a_failed_call_is_retried_whole_but_a_missing_stream_is_not() -> None:
    # GIVEN one client whose calls fail with a 500 and one whose stream does not exist
    server_error = ClientError({"Error": {"Code": "InternalFailure"}}, "PutRecords")
    missing = ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "PutRecords")
    flaky, gone = ScriptedKinesis(call_error=server_error), ScriptedKinesis(call_error=missing)
    retried, refused = _batcher(flaky, max_attempts=3), _batcher(gone, max_attempts=3)
    # WHEN two records are put through each
    flaky_outcome = await retried.put(_records("f", 2))
    gone_outcome = await refused.put(_records("g", 2))
    await retried.close(1)
    await refused.close(1)
    # THEN the 500s were tried 3 times and the missing stream once; nothing is durable
    assert len(flaky.calls) == 3
    assert len(gone.calls) == 1
    assert flaky_outcome.not_accepted == ["f-0", "f-1"]
    assert gone_outcome.not_accepted == ["g-0", "g-1"]
    assert _metric(retried, "ingest_kinesis_put_records_calls_total", {"outcome": "error"}) == 3


@pytest.mark.parametrize(
    ("error", "calls"),
    [
        (ClientError({"Error": {"Code": "SomethingAwsAddsLater"}}, "PutRecords"), 1),
        (NoCredentialsError(), 1),
        (HTTPClientError(error=ConnectionResetError("reset by peer")), 3),
    ],
    ids=["unknown-code", "no-credentials", "connection-reset"],
)
async def test_unknown_errors_fail_at_once_and_transport_errors_are_retried(
    error: BaseException, calls: int
) -> None:
    # GIVEN calls that all fail with that error and a budget of 3 attempts
    client = ScriptedKinesis(call_error=error)
    batcher = _batcher(client, max_attempts=3)
    # WHEN a record is put
    outcome = await batcher.put(_records("u", 1))
    await batcher.close(1)
    # THEN only trouble on the wire was retried; either way the client learns it is not durable
    assert len(client.calls) == calls
    assert outcome.not_accepted == ["u-0"]


@pytest.mark.parametrize(
    ("code", "attempts"),
    [("ProvisionedThroughputExceededException", 3), ("KMSAccessDeniedException", 1)],
)
async def test_refused_entries_are_resent_only_when_their_code_is_retryable(
    code: str, attempts: int
) -> None:
    # GIVEN a stream that refuses every entry with that code and a budget of 3 attempts
    client = ScriptedKinesis(lambda _data, _attempt: code)
    batcher = _batcher(client, max_attempts=3)
    # WHEN a record is put
    outcome = await batcher.put(_records("k", 1))
    await batcher.close(1)
    # THEN throttling was resent until the budget ran out, a denied key was not resent
    assert client.attempts[b"k-0"] == attempts
    assert outcome.not_accepted == ["k-0"]


async def test_the_request_deadline_bounds_the_wait_even_when_calls_hang() -> None:
    # GIVEN a Kinesis call that never answers, a 0.2 s call timeout and a 0.5 s request budget
    client = ScriptedKinesis(hold=asyncio.Event())
    batcher = _batcher(client, call_timeout=0.2, request_timeout=0.5, max_attempts=20)
    loop = asyncio.get_running_loop()
    started = loop.time()
    # WHEN a record is put
    outcome = await batcher.put(_records("h", 1))
    elapsed = loop.time() - started
    await batcher.close(1)
    # THEN the request is answered within its budget, with nothing durable
    assert outcome.not_accepted == ["h-0"]
    assert 0.2 <= elapsed < 1.0


async def test_a_full_buffer_refuses_at_once() -> None:
    # GIVEN a buffer of 15 records and calls that hang, so nothing drains
    hold = asyncio.Event()
    client = ScriptedKinesis(hold=hold)
    batcher = _batcher(client, max_buffered=15, linger=0)
    first = asyncio.create_task(batcher.put(_records("a", 10)))
    await asyncio.sleep(0.01)
    # WHEN a request that would exceed the bound arrives
    with pytest.raises(BufferFullError):
        await batcher.put(_records("b", 6))
    # THEN a request that fits is still taken, and both succeed once Kinesis answers
    second = asyncio.create_task(batcher.put(_records("c", 5)))
    await asyncio.sleep(0.01)
    assert batcher.buffered == 15
    hold.set()
    assert (await first).complete
    assert (await second).complete
    await batcher.close(1)


async def test_close_flushes_what_is_buffered_then_refuses_new_records() -> None:
    # GIVEN a long linger, so records would wait 10 s for company
    client = ScriptedKinesis()
    batcher = _batcher(client, linger=10.0)
    waiting = asyncio.create_task(batcher.put(_records("w", 3)))
    await asyncio.sleep(0.01)
    assert client.calls == []
    # WHEN the batcher is closed
    await batcher.close(2)
    # THEN the buffered records were sent at once, and new puts are refused
    assert (await waiting).complete
    assert len(client.calls) == 1
    with pytest.raises(BatcherClosedError):
        await batcher.put(_records("late", 1))


async def test_records_queue_while_all_calls_are_in_flight_and_leave_together() -> None:
    # GIVEN one call slot and no linger: pure group commit
    hold = asyncio.Event()
    client = ScriptedKinesis(hold=hold)
    batcher = _batcher(client, concurrency=1, linger=0)
    first = asyncio.create_task(batcher.put(_records("first", 1)))
    await asyncio.sleep(0.01)
    # WHEN 20 requests arrive while that call is in flight
    later = [asyncio.create_task(batcher.put(_records(f"later{n}", 1))) for n in range(20)]
    await asyncio.sleep(0.01)
    hold.set()
    await asyncio.gather(first, *later)
    await batcher.close(1)
    # THEN they all shared the next call
    assert [len(call) for call in client.calls] == [1, 20]


class UncountedKinesis(ScriptedKinesis):
    """Answers without FailedRecordCount, as a faulty stand-in might: entries must be read."""

    async def put_records(
        self, *, StreamName: str, Records: list[dict[str, Any]]
    ) -> dict[str, Any]:
        response = await super().put_records(StreamName=StreamName, Records=Records)
        del response["FailedRecordCount"]
        return response


async def test_an_answer_without_a_failed_count_is_read_entry_by_entry() -> None:
    # GIVEN a Kinesis that throttles every entry's first attempt and leaves out the failed count
    client = UncountedKinesis(lambda _data, attempt: THROTTLED if attempt == 1 else None)
    batcher = _batcher(client)
    # WHEN a request is put
    outcome = await batcher.put(_records("u", 5))
    await batcher.close(1)
    # THEN the refused entries were seen and resent, not taken for accepted
    assert outcome.complete
    assert sorted(client.stored) == sorted(data for _, _, data in _records("u", 5))
    assert len(client.calls) == 2
    assert _metric(batcher, "ingest_kinesis_entries_retried_total") == 5


# -- with aggregation (AGGREGATION=true) ---------------------------------------------------------


def _trades_in(stored: list[bytes], key: str = "AAPL") -> list[bytes]:
    return [user.data for data in stored for user in kpl.deaggregate(data, key)]


async def test_with_aggregation_concurrent_requests_share_aggregated_records() -> None:
    # GIVEN aggregation on and 60 requests of 10 trades arriving within the linger
    client = ScriptedKinesis()
    batcher = _batcher(client, aggregation=True)
    # WHEN they are put concurrently
    outcomes = await asyncio.gather(*(batcher.put(_records(f"r{n}", 10)) for n in range(60)))
    await batcher.close(1)
    # THEN one call carried one aggregate holding all 600, and every request was accepted
    assert [len(call) for call in client.calls] == [1]
    assert all(kpl.is_aggregate(data) for data in client.stored)
    expected = [data for n in range(60) for _, _, data in _records(f"r{n}", 10)]
    assert _trades_in(client.stored) == expected
    assert all(o.complete and len(o.accepted) == 10 for o in outcomes)
    # AND trades and Kinesis records are counted apart
    assert _metric(batcher, "ingest_trades_accepted_total") == 600
    assert _metric(batcher, "ingest_kinesis_records_put_total") == 1
    assert _metric(batcher, "ingest_kinesis_aggregates_put_total") == 1


async def test_with_aggregation_a_refused_aggregate_is_resent_whole_until_accepted() -> None:
    # GIVEN aggregates of ~1 KiB, and Kinesis refusing the aggregate holding t-30 twice
    def refuse_twice(data: bytes, attempt: int) -> str | None:
        return THROTTLED if b"t-30 " in data and attempt < 3 else None

    client = ScriptedKinesis(refuse_twice)
    batcher = _batcher(client, aggregation=True, aggregation_max_bytes=1024)
    # WHEN 100 trades of 40 bytes are put in one request
    outcome = await batcher.put(_records("t", 100, size=40))
    await batcher.close(1)
    # THEN each resend carried exactly the refused aggregate, byte for byte
    first, *resends = client.calls
    [refused] = [data for data in first if b"t-30 " in data]
    assert resends == [[refused], [refused]]
    # AND the request is complete with every trade stored once
    assert outcome.complete
    assert Counter(_trades_in(client.stored)) == Counter(d for _, _, d in _records("t", 100, 40))
    carried = len(kpl.deaggregate(refused, "AAPL"))
    assert _metric(batcher, "ingest_kinesis_entries_retried_total") == 2
    assert _metric(batcher, "ingest_trades_retried_total") == 2 * carried
    assert _metric(batcher, "ingest_kinesis_records_put_total") == len(first)


async def test_with_aggregation_an_aggregate_out_of_budget_fails_the_requests_in_it() -> None:
    # GIVEN two requests sharing one aggregate that Kinesis always refuses
    client = ScriptedKinesis(lambda _data, _attempt: THROTTLED)
    batcher = _batcher(client, aggregation=True, max_attempts=3)
    # WHEN both are put together
    first, second = await asyncio.gather(
        batcher.put(_records("a", 3)), batcher.put(_records("b", 2))
    )
    await batcher.close(1)
    # THEN the aggregate went 3 times, and each request learns none of its trades is durable
    assert [len(call) for call in client.calls] == [1, 1, 1]
    assert (first.not_accepted, second.not_accepted) == (["a-0", "a-1", "a-2"], ["b-0", "b-1"])
    assert _metric(batcher, "ingest_trades_failed_total") == 5
    assert batcher.buffered == 0
