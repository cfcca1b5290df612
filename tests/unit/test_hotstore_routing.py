"""Hotstore.process over fake clients: routing, failure mapping back to sequence numbers, logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from lambdas.hotstore.handler import Hotstore, logger
from lambdas.hotstore.settings import HotstoreSettings
from tradestream.retry import Clock

EVENTS = Path(__file__).parents[1] / "events"
TABLE = "stock_trades"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/stock_trades-dlq"
SETTINGS = HotstoreSettings(table_name=TABLE, dlq_url=QUEUE, max_write_attempts=2)


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def _seqs(event: dict[str, Any], *positions: int) -> list[str]:
    return [event["Records"][i]["kinesis"]["sequenceNumber"] for i in positions]


class FakeDynamoDB:
    def __init__(self, hold_symbol: str | None = None) -> None:
        self.hold_symbol = hold_symbol  # items of this symbol are never processed
        self.items: list[dict[str, Any]] = []
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        held = []
        for request in RequestItems[TABLE]:
            item = request["PutRequest"]["Item"]
            if item["s"]["S"] == self.hold_symbol:
                held.append(request)
            else:
                self.items.append(item)
        return {"UnprocessedItems": {TABLE: held} if held else {}}


class FakeSQS:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.bodies: list[dict[str, Any]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        if self.fail:
            failed = [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"} for e in Entries
            ]
            return {"Successful": [], "Failed": failed}
        self.bodies += [json.loads(e["MessageBody"]) for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def _hotstore(dynamodb: FakeDynamoDB, sqs: FakeSQS) -> Hotstore:
    return Hotstore(
        SETTINGS,
        dynamodb=dynamodb,
        sqs=sqs,
        clock=Clock(wall_ms=lambda: 1718900000300, sleep=lambda _: None),
    )


def test_sample_batch_is_one_call_of_distinct_items_and_no_failures() -> None:
    # GIVEN the sample batch (8 records, one a replay of the first)
    dynamodb, sqs = FakeDynamoDB(), FakeSQS()

    # WHEN processed
    response = _hotstore(dynamodb, sqs).process(_event("kinesis_hotstore_batch.json"))

    # THEN 7 distinct items in one call, the replay's later rt winning, nothing to the DLQ
    assert response == {"batchItemFailures": []}
    assert dynamodb.calls == 1
    assert len(dynamodb.items) == 7
    first = next(i for i in dynamodb.items if i["id"]["S"] == "d18b60a364506c5500c34c96fac92b52")
    assert first["rt"] == {"N": "1718900000174"}
    assert {i["ingested_at"]["N"] for i in dynamodb.items} == {"1718900000300"}
    assert sqs.bodies == []


def test_poison_goes_to_the_dlq_and_is_not_reported_while_valid_records_are_written() -> None:
    # GIVEN the poison sample: records 1, 3 and 4 are poison
    event = _event("kinesis_hotstore_poison.json")
    dynamodb, sqs = FakeDynamoDB(), FakeSQS()

    # WHEN processed
    response = _hotstore(dynamodb, sqs).process(event)

    # THEN nothing is reported; 3 items written; 3 messages with reasons, in event order
    assert response == {"batchItemFailures": []}
    assert len(dynamodb.items) == 3
    assert [(b["sequenceNumber"], b["reason"]) for b in sqs.bodies] == list(
        zip(_seqs(event, 1, 3, 4), ["InvalidJson", "InvalidTrade", "InvalidTrade"], strict=True)
    )
    assert [b["data"] for b in sqs.bodies] == [
        event["Records"][i]["kinesis"]["data"] for i in (1, 3, 4)
    ]


def test_poison_the_dlq_cannot_take_is_reported_for_redelivery() -> None:
    # GIVEN a DLQ failing every entry
    event = _event("kinesis_hotstore_poison.json")
    dynamodb, sqs = FakeDynamoDB(), FakeSQS(fail=True)

    # WHEN processed
    response = _hotstore(dynamodb, sqs).process(event)

    # THEN exactly the poison records are reported; the valid ones were still written
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in _seqs(event, 1, 3, 4)]}
    assert len(dynamodb.items) == 3


def test_an_unwritten_item_reports_every_record_carrying_it() -> None:
    # GIVEN a table that never takes AAPL items; the batch has 4 AAPL records (3 trades + a replay)
    event = _event("kinesis_hotstore_batch.json")

    # WHEN processed
    response = _hotstore(FakeDynamoDB(hold_symbol="AAPL"), FakeSQS()).process(event)

    # THEN the 4 AAPL records are reported, the replay included, in event order
    assert response == {
        "batchItemFailures": [{"itemIdentifier": s} for s in _seqs(event, 0, 1, 2, 7)]
    }


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The function's JSON log lines (its handler holds the stdout it saw at import)."""
    handler = cast(logging.StreamHandler, logger.registered_handler)  # type: ignore[type-arg]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    handler.setStream(previous)


def test_logs_counts_that_reconcile_and_never_the_payloads(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    # GIVEN the poison sample and a table that never takes MSFT
    event = _event("kinesis_hotstore_poison.json")

    # WHEN processed
    _hotstore(FakeDynamoDB(hold_symbol="MSFT"), FakeSQS()).process(event)

    # THEN the summary line has the counts: received = written + poison + failed
    lines = log_lines()
    summary = next(line for line in lines if line["message"] == "batch processed")
    assert (summary["received"], summary["written"], summary["poison"], summary["failed"]) == (
        6,
        2,
        3,
        1,
    )
    # AND each poison record has a warning with its reason and locator; the write failure one too
    kept = [line for line in lines if line["message"] == "poison record kept in the DLQ"]
    assert [(k["reason"], k["sequence_number"]) for k in kept] == list(
        zip(["InvalidJson", "InvalidTrade", "InvalidTrade"], _seqs(event, 1, 3, 4), strict=True)
    )
    unwritten = next(line for line in lines if line["message"].startswith("items not written"))
    assert (unwritten["records"], unwritten["codes"]) == (1, {"UnprocessedItems": 1})
    # AND no line carries a record's data or a trade id
    text = json.dumps(lines)
    assert all(r["kinesis"]["data"] not in text for r in event["Records"])
    assert "8f2212c0afff8dc1c65fc4cadaa5b5a0" not in text


def test_empty_event_writes_nothing() -> None:
    # GIVEN an event without records WHEN processed THEN no call and no failure
    dynamodb = FakeDynamoDB()
    assert _hotstore(dynamodb, FakeSQS()).process({"Records": []}) == {"batchItemFailures": []}
    assert dynamodb.calls == 0
