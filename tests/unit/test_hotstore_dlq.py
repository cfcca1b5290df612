"""Poison records to SQS: the message body, packing within SendMessageBatch limits, retries."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambdas.hotstore.dlq import (
    MAX_BATCH_BYTES,
    DeadLetter,
    DeadLetterQueue,
    message_body,
    packed,
)
from lambdas.hotstore.records import INVALID_JSON, RecordRef
from lambdas.hotstore.rounds import RetryRounds
from tradestream import kpl
from tradestream.retry import Backoff, Clock

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/stock_trades-dlq"
Script = Callable[[int, list[dict[str, str]]], dict[str, Any]]


def _letter(n: int, data: bytes = b"AAPL,187.25,20") -> DeadLetter:
    ref = RecordRef(
        event_source_arn="arn:aws:kinesis:us-east-1:123456789012:stream/trades",
        shard_id="shardId-000000000003",
        sequence_number=str(49654263013845209432479583210495063582461049102541406210 + n),
        partition_key="AAPL",
        approximate_arrival_timestamp=1718900001.032,
        data=base64.b64encode(data).decode(),
    )
    return DeadLetter(ref, INVALID_JSON, "record: Invalid JSON: expected value at line 1 column 1")


def _all_ok(call: int, entries: list[dict[str, str]]) -> dict[str, Any]:
    return {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}


class FakeSQS:
    def __init__(self, script: Script = _all_ok) -> None:
        self.script = script
        self.calls: list[list[dict[str, str]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        assert QueueUrl == QUEUE
        self.calls.append(Entries)
        return self.script(len(self.calls), Entries)


def _queue(client: FakeSQS, attempts: int = 3) -> DeadLetterQueue:
    rounds = RetryRounds(
        max_attempts=attempts, backoff=Backoff(0.01, 0.01), clock=Clock(sleep=lambda _: None)
    )
    return DeadLetterQueue(client, QUEUE, rounds, clock_ms=lambda: 1718900002000)


def test_body_keeps_reason_locator_and_the_data_as_received() -> None:
    # GIVEN a poison record WHEN its message body is built
    letter = _letter(0)
    body = json.loads(message_body(letter, failed_at_ms=5, extra={"requestId": "r-1"}))

    # THEN it has everything to find and replay the record, and says it comes from the handler
    assert body == {
        "source": "tradestream.hotstore",
        "schema": 1,
        "reason": "InvalidJson",
        "error": "record: Invalid JSON: expected value at line 1 column 1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/trades",
        "shardId": "shardId-000000000003",
        "sequenceNumber": letter.ref.sequence_number,
        "partitionKey": "AAPL",
        "approximateArrivalTimestamp": 1718900001.032,
        "data": letter.ref.data,
        "failedAt": 5,
        "requestId": "r-1",
    }
    assert base64.b64decode(body["data"]) == b"AAPL,187.25,20"


def test_a_record_too_big_for_sqs_keeps_its_locator_and_a_digest_instead_of_its_data() -> None:
    # GIVEN a 1 MiB poison record (the Kinesis maximum)
    data = b"x" * (1024 * 1024)
    letter = _letter(0, data)

    # WHEN its body is built
    text = message_body(letter, failed_at_ms=5)
    body = json.loads(text)

    # THEN it fits one SQS message and says what was left out
    assert len(text.encode()) <= MAX_BATCH_BYTES
    assert body["data"] is None
    assert body["dataOmitted"] is True
    assert body["dataLength"] == len(data)
    assert body["dataSha256"] == hashlib.sha256(data).hexdigest()
    assert body["sequenceNumber"] == letter.ref.sequence_number


def test_packing_respects_10_entries_and_256_kib_per_call() -> None:
    # GIVEN 25 small entries, then 5 entries of 100 KiB
    small = [(str(i), "x" * 100) for i in range(25)]
    large = [(str(i), "y" * (100 * 1024)) for i in range(5)]

    # WHEN packed
    small_calls = list(packed(small))
    large_calls = list(packed(large))

    # THEN calls hold 10, 10, 5 entries, and at most two 100 KiB bodies each
    assert [len(c) for c in small_calls] == [10, 10, 5]
    assert [len(c) for c in large_calls] == [2, 2, 1]
    assert all(sum(len(b) for _, b in c) <= MAX_BATCH_BYTES for c in large_calls)
    assert [e for c in small_calls + large_calls for e in c] == small + large


def test_all_sent_in_ceil_n_over_10_calls() -> None:
    # GIVEN 23 poison records WHEN sent
    client = FakeSQS()
    result = _queue(client).send([_letter(n) for n in range(23)])

    # THEN 3 calls, entry ids unique per call, nothing failed
    assert [len(c) for c in client.calls] == [10, 10, 3]
    assert all(len({e["Id"] for e in c}) == len(c) for c in client.calls)
    assert len(result.sent) == 23
    assert result.failed == []


def test_failed_entries_are_retried_unless_the_sender_is_at_fault() -> None:
    # GIVEN SQS failing entry 1 on its side once, and refusing entry 2 as the sender's fault
    def script(call: int, entries: list[dict[str, str]]) -> dict[str, Any]:
        failed = []
        if call == 1:
            failed = [
                {"Id": "1", "SenderFault": False, "Code": "InternalError"},
                {"Id": "2", "SenderFault": True, "Code": "InvalidMessageContents"},
            ]
        failed_ids = {f["Id"] for f in failed}
        ok = [{"Id": e["Id"]} for e in entries if e["Id"] not in failed_ids]
        return {"Successful": ok, "Failed": failed}

    client = FakeSQS(script)
    letters = [_letter(n) for n in range(4)]

    # WHEN sent
    result = _queue(client).send(letters)

    # THEN entry 1 went again alone and was sent; entry 2 failed without another attempt
    assert [[e["Id"] for e in c] for c in client.calls] == [["0", "1", "2", "3"], ["1"]]
    assert result.failed == [(letters[2], "InvalidMessageContents")]
    assert result.sent == [letters[0], letters[1], letters[3]]


@pytest.mark.parametrize(
    ("code", "status", "calls"),
    [("ServiceUnavailable", 503, 3), ("AWS.SimpleQueueService.NonExistentQueue", 400, 1)],
)
def test_whole_call_errors_fail_every_entry_after_the_budget_or_at_once(
    code: str, status: int, calls: int
) -> None:
    # GIVEN a queue that answers every call with an error
    def script(call: int, entries: list[dict[str, str]]) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
            "SendMessageBatch",
        )

    client = FakeSQS(script)
    letters = [_letter(n) for n in range(2)]

    # WHEN sent with 3 attempts
    result = _queue(client, attempts=3).send(letters)

    # THEN transient errors used the 3 attempts, permanent ones one; every letter failed
    assert len(client.calls) == calls
    assert result.failed == [(letters[0], code), (letters[1], code)]
    assert result.sent == []


def _user_letter(data: bytes, **user: Any) -> DeadLetter:
    aggregate = _letter(0, kpl.aggregate([("AAPL", b"{}"), ("TSLA", data)]))
    poison = kpl.UserRecord("TSLA", data, sub_sequence_number=1, aggregated=True, **user)
    return DeadLetter(aggregate.ref, INVALID_JSON, "record: Invalid JSON", poison)


def test_a_poison_user_record_of_an_aggregate_has_its_own_data_key_and_position() -> None:
    # GIVEN the second user record of an aggregate, put with an explicit hash key, poison
    letter = _user_letter(b"TSLA,250", explicit_hash_key="170141183460469231731687303715884105728")

    # WHEN its message body is built
    body = json.loads(message_body(letter, failed_at_ms=5))

    # THEN it is located by the aggregate's sequence number and its own sub-sequence number,
    # and carries its own key, hash key and bytes, not the aggregate's
    assert body["sequenceNumber"] == letter.ref.sequence_number
    assert body["subSequenceNumber"] == 1
    assert body["explicitHashKey"] == "170141183460469231731687303715884105728"
    assert body["partitionKey"] == "TSLA"
    assert base64.b64decode(body["data"]) == b"TSLA,250"


def test_a_user_record_too_big_for_sqs_gets_the_digest_of_its_own_bytes() -> None:
    # GIVEN a 300 KiB poison user record of an aggregate
    data = b"y" * (300 * 1024)
    body = json.loads(message_body(_user_letter(data), failed_at_ms=5))

    # THEN the digest and length are the user record's, with its position to find it by
    assert (body["data"], body["dataOmitted"], body["dataLength"]) == (None, True, len(data))
    assert body["dataSha256"] == hashlib.sha256(data).hexdigest()
    assert body["subSequenceNumber"] == 1
