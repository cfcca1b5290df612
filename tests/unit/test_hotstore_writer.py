"""The batched writer against a scripted fake of the low-level DynamoDB client (no network)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from lambdas.hotstore.items import Item, Key, key_of
from lambdas.hotstore.rounds import RetryRounds
from lambdas.hotstore.writer import MAX_BATCH_ITEMS, BatchWriter, chunked, dedupe
from tradestream.retry import Backoff, Clock

TABLE = "stock_trades"
Script = Callable[[int, list[Item]], dict[str, Any]]


def _item(n: int, symbol: str = "AAPL", version: int = 0) -> Item:
    return {
        "s": {"S": symbol},
        "sk": {"S": f"{1718900000000 + n:013d}#{n:032x}"},
        "version": {"N": str(version)},
    }


def _ok(call: int, items: list[Item]) -> dict[str, Any]:
    return {"UnprocessedItems": {}}


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "BatchWriteItem",
    )


class FakeDynamoDB:
    """Records every BatchWriteItem call; ``script(call_number, items)`` answers or raises."""

    def __init__(self, script: Script = _ok) -> None:
        self.script = script
        self.calls: list[list[Item]] = []
        self.stored: dict[Key, Item] = {}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        assert list(RequestItems) == [TABLE]
        items = [request["PutRequest"]["Item"] for request in RequestItems[TABLE]]
        self.calls.append(items)
        response = self.script(len(self.calls), items)
        held = {
            key_of(r["PutRequest"]["Item"]) for r in response["UnprocessedItems"].get(TABLE, [])
        }
        for item in items:
            if key_of(item) not in held:
                self.stored[key_of(item)] = item
        return response


def _unprocessed(items: list[Item]) -> dict[str, Any]:
    return {"UnprocessedItems": {TABLE: [{"PutRequest": {"Item": i}} for i in items]}}


def _writer(
    client: FakeDynamoDB, attempts: int = 5, **kwargs: Any
) -> tuple[BatchWriter, list[float]]:
    sleeps: list[float] = []
    rounds = RetryRounds(
        max_attempts=attempts,
        backoff=Backoff(0.1, 1.0, rand=lambda: 1.0),  # no jitter: the ceiling itself
        clock=Clock(sleep=sleeps.append, **kwargs),
    )
    writer = BatchWriter(client, TABLE, rounds)
    return writer, sleeps


def test_chunked_never_exceeds_25_and_keeps_everything_in_order() -> None:
    # GIVEN 0, 1, 25, 26 and 501 entries WHEN chunked
    for n in (0, 1, 25, 26, 501):
        chunks = [list(c) for c in chunked(list(range(n)))]
        # THEN ceil(n/25) chunks of at most 25, concatenating back to the input
        assert len(chunks) == math.ceil(n / MAX_BATCH_ITEMS)
        assert all(1 <= len(c) <= 25 for c in chunks)
        assert [x for c in chunks for x in c] == list(range(n))


def test_dedupe_keeps_one_item_per_key_the_last_one_wins() -> None:
    # GIVEN the same key three times (a trade replayed) among distinct keys
    items = [_item(1, version=1), _item(2), _item(1, version=2), _item(1, version=3)]

    # WHEN deduped THEN one item per key, key 1 carrying the last version, first-seen order kept
    unique = dedupe(items)
    assert list(unique) == [key_of(_item(1)), key_of(_item(2))]
    assert unique[key_of(_item(1))]["version"] == {"N": "3"}


def test_n_distinct_items_take_ceil_n_over_25_calls_without_duplicate_keys_in_any() -> None:
    # GIVEN 260 distinct items plus 40 replays of some of them, and a table that takes everything
    items = [_item(n) for n in range(260)] + [_item(n, version=1) for n in range(0, 200, 5)]
    client = FakeDynamoDB()
    writer, sleeps = _writer(client)

    # WHEN written
    result = writer.write(items)

    # THEN 11 calls, none over 25 items, no key twice in one call, and every key stored once
    assert result.calls == len(client.calls) == math.ceil(260 / 25) == 11
    assert all(len(call) <= 25 for call in client.calls)
    assert all(len({key_of(i) for i in call}) == len(call) for call in client.calls)
    assert len(client.stored) == 260
    assert result.written == set(client.stored)
    assert result.failed == {}
    assert client.stored[key_of(_item(5))]["version"] == {"N": "1"}
    assert sleeps == []


def test_only_unprocessed_items_are_resent_after_one_backoff_per_round() -> None:
    # GIVEN 60 items (3 calls) where the first round holds back 7 items and the second 2 of those
    held_first = {key_of(_item(n)) for n in (0, 3, 24, 25, 40, 58, 59)}
    held_second = {key_of(_item(n)) for n in (3, 58)}

    def script(call: int, items: list[Item]) -> dict[str, Any]:
        held = held_first if call <= 3 else held_second if call == 4 else set()
        return _unprocessed([i for i in items if key_of(i) in held])

    client = FakeDynamoDB(script)
    writer, sleeps = _writer(client)

    # WHEN written
    result = writer.write([_item(n) for n in range(60)])

    # THEN round 2 resends exactly the 7 held items in one call, round 3 exactly the 2 still held
    assert [len(c) for c in client.calls] == [25, 25, 10, 7, 2]
    assert {key_of(i) for i in client.calls[3]} == held_first
    assert {key_of(i) for i in client.calls[4]} == held_second
    # AND everything landed, after one backoff per round (0.1 then 0.2 s), not per chunk
    assert len(client.stored) == 60
    assert result.failed == {}
    assert result.rounds == 3
    assert sleeps == [0.1, 0.2]


def test_transient_whole_call_errors_are_retried_and_permanent_ones_are_not() -> None:
    # GIVEN a throttled first call, a 500 on the second, and a validation error on the third
    def script(call: int, items: list[Item]) -> dict[str, Any]:
        if call == 1:
            raise _client_error("ProvisionedThroughputExceededException", 400)
        if call == 2:
            raise _client_error("SomethingNew", 503)
        if call == 3:
            raise _client_error("ValidationException", 400)
        return _ok(call, items)

    client = FakeDynamoDB(script)
    writer, _ = _writer(client)

    # WHEN 75 items (3 chunks) are written
    result = writer.write([_item(n) for n in range(75)])

    # THEN the two transient chunks were resent and landed; the refused one failed without retry
    assert [len(c) for c in client.calls] == [25, 25, 25, 25, 25]
    assert len(client.stored) == 50
    assert result.failed == {key_of(_item(n)): "ValidationException" for n in range(50, 75)}


def test_connection_errors_are_transient() -> None:
    # GIVEN an endpoint that cannot be reached once
    def script(call: int, items: list[Item]) -> dict[str, Any]:
        if call == 1:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        return _ok(call, items)

    client = FakeDynamoDB(script)
    writer, _ = _writer(client)

    # WHEN written THEN the call is repeated and the items land
    result = writer.write([_item(1)])
    assert len(client.calls) == 2
    assert result.written == {key_of(_item(1))}


def test_items_still_unprocessed_when_the_budget_is_spent_are_returned_as_failed() -> None:
    # GIVEN a table that never takes item 7
    def script(call: int, items: list[Item]) -> dict[str, Any]:
        return _unprocessed([i for i in items if key_of(i) == key_of(_item(7))])

    client = FakeDynamoDB(script)
    writer, sleeps = _writer(client, attempts=3)

    # WHEN 40 items are written with 3 attempts
    result = writer.write([_item(n) for n in range(40)])

    # THEN only item 7 failed, after 2 calls then 1 call per retry round
    assert result.failed == {key_of(_item(7)): "UnprocessedItems"}
    assert len(result.written) == 39
    assert [len(c) for c in client.calls] == [25, 15, 1, 1]
    assert result.rounds == 3
    assert len(sleeps) == 2


def test_calls_throttled_past_the_budget_fail_exactly_their_items() -> None:
    # GIVEN a table that throttles the second call of every round
    def script(call: int, items: list[Item]) -> dict[str, Any]:
        if call in (2, 3):
            raise _client_error("ThrottlingException", 400)
        return _ok(call, items)

    client = FakeDynamoDB(script)
    writer, _ = _writer(client, attempts=2)

    # WHEN 40 items are written with 2 attempts
    result = writer.write([_item(n) for n in range(40)])

    # THEN the 15 items of the throttled call failed with the throttling code; the rest landed
    assert result.failed == {key_of(_item(n)): "ThrottlingException" for n in range(25, 40)}
    assert result.written == {key_of(_item(n)) for n in range(25)}
    assert len(client.calls) == 3


def test_retries_stop_at_the_deadline() -> None:
    # GIVEN a table that never processes anything, and a deadline 0.25 s away on a fake clock
    client = FakeDynamoDB(lambda call, items: _unprocessed(items))
    now = [100.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    rounds = RetryRounds(
        max_attempts=10,
        backoff=Backoff(0.1, 1.0, rand=lambda: 1.0),
        clock=Clock(sleep=sleep, monotonic=lambda: now[0]),
    )
    writer = BatchWriter(client, TABLE, rounds)

    # WHEN written
    result = writer.write([_item(1)], deadline=100.25)

    # THEN it tried at 100.0 and 100.1, and gave up rather than sleep 0.2 s past the deadline
    assert len(client.calls) == 2
    assert result.failed == {key_of(_item(1)): "UnprocessedItems"}


def test_parameter_errors_are_bugs_and_propagate() -> None:
    # GIVEN a client refusing the request's parameters
    def script(call: int, items: list[Item]) -> dict[str, Any]:
        raise ParamValidationError(report="bad")

    writer, _ = _writer(FakeDynamoDB(script))

    # WHEN written THEN the error is raised (a function error), not reported per record
    with pytest.raises(ParamValidationError):
        writer.write([_item(1)])


def test_each_item_is_stamped_with_the_time_of_the_call_that_wrote_it() -> None:
    # GIVEN 60 items (three calls) on a clock that moves 10 ms per reading, and a first call
    # that leaves its last item unprocessed
    ticks = iter(range(1_000, 10_000, 10))
    seen: list[set[str]] = []

    def script(call: int, items: list[Item]) -> dict[str, Any]:
        seen.append({item["ingested_at"]["N"] for item in items})
        return _unprocessed(items[-1:]) if call == 1 else {"UnprocessedItems": {}}

    client = FakeDynamoDB(script)
    rounds = RetryRounds(
        max_attempts=3,
        backoff=Backoff(0.1, 1.0, rand=lambda: 1.0),
        clock=Clock(sleep=lambda _: None),
    )
    writer = BatchWriter(client, TABLE, rounds, clock_ms=lambda: next(ticks))
    # WHEN they are written
    result = writer.write([_item(n) for n in range(60)])
    # THEN every call carried one stamp, its own, and the retried item the retry's
    assert len(result.written) == 60
    assert seen == [{"1000"}, {"1010"}, {"1020"}, {"1030"}]
    retried = key_of(_item(24))
    assert client.stored[retried]["ingested_at"] == {"N": "1030"}
    assert {client.stored[key_of(_item(n))]["ingested_at"]["N"] for n in range(25, 50)} == {"1010"}
