"""The hotstore handler with AWS-shaped faults injected over real HTTP (FaultProxy before moto):
UnprocessedItems, throttled and failing calls, a DLQ that is down or not there at all."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.hotstore import handler as hotstore_handler
from lambdas.hotstore.handler import BatchResponse
from tests.support.faults import FaultProxy
from tests.support.hotstore import (
    Resources,
    context,
    distinct_trades,
    items,
    provision,
    sample,
    trades_event,
)
from tradestream.local.moto_server import MotoHandle
from tradestream.trade import Trade


@pytest.fixture
def resources(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    yield from provision(aws_env, unique, monkeypatch)


@pytest.fixture
def proxy(moto: MotoHandle) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url, seed=11) as running:
        yield running


def _route(monkeypatch: pytest.MonkeyPatch, service: str, url: str) -> None:
    """Point the function's client for one service elsewhere; the next invocation is cold."""
    monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", url)
    hotstore_handler.reset()


def _wire_items(table: str) -> list[int]:
    """Items per BatchWriteItem call of the function's DynamoDB client, as sent on the wire."""
    sizes: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(json.loads(params["body"])["RequestItems"][table]))

    client = hotstore_handler.hotstore().writer.client
    client.meta.events.register("before-call.dynamodb.BatchWriteItem", count)
    return sizes


def _sequences(event: dict[str, Any], trades: list[Trade], ids: set[str]) -> list[str]:
    return [
        record["kinesis"]["sequenceNumber"]
        for record, trade in zip(event["Records"], trades, strict=True)
        if trade.id in ids
    ]


def _reported(response: BatchResponse) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_unprocessed_items_are_retried_alone_until_all_land(
    resources: Resources, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB behind a proxy holding back half of every BatchWriteItem's items
    _route(monkeypatch, "dynamodb", proxy.url)
    proxy.dynamodb_unprocessed_rate = 0.5
    trades = distinct_trades(100)
    sent = _wire_items(resources.table)

    # WHEN a batch of 100 trades is handled
    response = hotstore_handler.handler(trades_event(trades), context())

    # THEN all 100 landed and nothing is reported
    assert response == {"batchItemFailures": []}
    assert len(items(resources)) == 100
    # AND only what came back unprocessed was sent again: 100 items + exactly the held ones
    held = proxy.injected["BatchWriteItem:unprocessed"]
    assert held > 0
    assert sum(sent) == 100 + held
    assert proxy.counts["BatchWriteItem"] == len(sent) > 4
    assert max(sent) <= 25


def test_items_unprocessed_past_the_budget_are_exactly_the_reported_records(
    resources: Resources, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one write attempt, and a proxy holding back 30% of the items
    monkeypatch.setenv("MAX_WRITE_ATTEMPTS", "1")
    _route(monkeypatch, "dynamodb", proxy.url)
    proxy.dynamodb_unprocessed_rate = 0.3
    trades = distinct_trades(60)
    event = trades_event(trades)

    # WHEN the batch is handled
    response = hotstore_handler.handler(event, context())

    # THEN the reported sequence numbers are exactly those of the trades not in the table
    stored = {item["id"] for item in items(resources).values()}
    missing = {trade.id for trade in trades} - stored
    assert len(missing) == proxy.injected["BatchWriteItem:unprocessed"] > 0
    assert _reported(response) == _sequences(event, trades, missing)


def test_a_failing_call_past_the_budget_reports_exactly_its_records(
    resources: Resources, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one write attempt, and the next BatchWriteItem answered with HTTP 500
    monkeypatch.setenv("MAX_WRITE_ATTEMPTS", "1")
    _route(monkeypatch, "dynamodb", proxy.url)
    proxy.fail_next("BatchWriteItem", 1, status=500)
    trades = distinct_trades(30)
    event = trades_event(trades)

    # WHEN 30 trades (calls of 25 and 5) are handled
    response = hotstore_handler.handler(event, context())

    # THEN the first call's 25 records are reported and the other 5 trades are stored
    assert _reported(response) == [r["kinesis"]["sequenceNumber"] for r in event["Records"][:25]]
    assert {i["id"] for i in items(resources).values()} == {t.id for t in trades[25:]}


def test_throttled_calls_are_retried_within_the_budget(
    resources: Resources, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the next two BatchWriteItem calls throttled
    _route(monkeypatch, "dynamodb", proxy.url)
    proxy.throttle_next("BatchWriteItem", 2)
    trades = distinct_trades(30)

    # WHEN 30 trades are handled
    response = hotstore_handler.handler(trades_event(trades), context())

    # THEN both chunks were sent again after the throttling, and everything landed
    assert response == {"batchItemFailures": []}
    assert proxy.injected["BatchWriteItem:ThrottlingException"] == 2
    assert proxy.counts["BatchWriteItem"] == 4
    assert len(items(resources)) == 30


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("outage", ["503", "no listener"])
def test_poison_is_reported_when_the_dlq_is_unreachable(
    outage: str,
    resources: Resources,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN SQS answering every call with 503, or nothing listening at its endpoint
    if outage == "503":
        proxy.down = True
        _route(monkeypatch, "sqs", proxy.url)
    else:
        _route(monkeypatch, "sqs", _closed_port_url())
    event = sample("kinesis_hotstore_poison.json")

    # WHEN the poison sample is handled
    response = hotstore_handler.handler(event, context())

    # THEN the 3 poison records are reported for redelivery, never dropped
    assert _reported(response) == [
        event["Records"][i]["kinesis"]["sequenceNumber"] for i in (1, 3, 4)
    ]
    # AND the valid trades of the batch were written anyway
    assert len(items(resources)) == 3
    # AND each DLQ attempt of the budget (3) was one call, SDK retries being off
    if outage == "503":
        assert proxy.counts["SendMessageBatch"] == 3


def test_poison_is_reported_when_the_dlq_does_not_exist(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a DLQ_URL naming a queue that does not exist
    monkeypatch.setenv("DLQ_URL", resources.queue_url + "-gone")
    hotstore_handler.reset()
    event = sample("kinesis_hotstore_poison.json")

    # WHEN the poison sample is handled
    response = hotstore_handler.handler(event, context())

    # THEN the poison records are reported, and the valid ones written
    assert _reported(response) == [
        event["Records"][i]["kinesis"]["sequenceNumber"] for i in (1, 3, 4)
    ]
    assert len(items(resources)) == 3
