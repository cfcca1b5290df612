"""Hotstore test helpers: a table and DLQ per test, sample events, reading items back."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.hotstore import handler as hotstore_handler
from lambdas.hotstore.records import RecordRef, decode_trade, user_records
from tradestream import aws
from tradestream.local.lambda_runtime import LambdaContext, function_arn
from tradestream.trade import RawTrade, Trade, stamp

EVENTS = Path(__file__).parents[1] / "events"
FUNCTION = "tradestream-hotstore"


@dataclass
class Resources:
    table: str
    queue_url: str
    dynamodb: Any
    sqs: Any


def create_table_and_dlq(dynamodb: Any, sqs: Any, name: str) -> tuple[str, str]:
    """A table with the template's key schema (s HASH, sk RANGE) and a DLQ; their name and URL."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "s", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "s", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    return name, sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]


def provision(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    """A table with the template's key schema and a DLQ, named for one test, in the environment."""
    # Straight to moto (aws_env points AWS_ENDPOINT_URL there), never through a fault proxy.
    dynamodb = aws.client("dynamodb", endpoint_url=aws_env)
    sqs = aws.client("sqs", endpoint_url=aws_env)
    table, queue_url = create_table_and_dlq(dynamodb, sqs, f"hotstore-{unique}")
    monkeypatch.setenv("TABLE_NAME", table)
    monkeypatch.setenv("DLQ_URL", queue_url)
    monkeypatch.setenv("WRITE_BACKOFF_BASE_SECONDS", "0.001")
    monkeypatch.setenv("WRITE_BACKOFF_MAX_SECONDS", "0.01")
    hotstore_handler.reset()
    yield Resources(table, queue_url, dynamodb, sqs)
    hotstore_handler.reset()


@pytest.fixture
def resources(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    yield from provision(aws_env, unique, monkeypatch)


def context() -> LambdaContext:
    return LambdaContext(
        function_name=FUNCTION,
        invoked_function_arn=function_arn("us-east-1", "123456789012", FUNCTION),
    )


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def decode_record(ref: RecordRef) -> Trade:
    """The trade of a Kinesis record that carries one (a plain record), read as the handler does:
    PoisonRecordError when the record, or its one user record, is poison."""
    (user,) = user_records(ref)
    return decode_trade(user, arrival_s=ref.approximate_arrival_timestamp)


def trades_event(trades: list[Trade]) -> dict[str, Any]:
    """An event in the sample's exact shape, one record per trade, increasing sequence numbers."""
    return kinesis_event([(trade.s, trade.to_record()) for trade in trades])


def kinesis_event(records: list[tuple[str, bytes]]) -> dict[str, Any]:
    """An event in the sample's exact shape, one Kinesis record per (partition key, data), e.g. a
    KPL aggregate, with increasing sequence numbers."""
    template = sample("kinesis_hotstore_batch.json")["Records"][0]
    first = int(template["kinesis"]["sequenceNumber"])
    event_records = []
    for i, (partition_key, data) in enumerate(records):
        record = copy.deepcopy(template)
        sequence = str(first + i * 2**70)
        record["kinesis"].update(
            partitionKey=partition_key,
            sequenceNumber=sequence,
            data=base64.b64encode(data).decode(),
        )
        record["eventID"] = f"shardId-000000000000:{sequence}"
        event_records.append(record)
    return {"Records": event_records}


def distinct_trades(n: int) -> list[Trade]:
    symbols = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
    raws = [
        RawTrade(s=symbols[i % 4], p=100 + i / 100, v=i + 1, t=1718900000000 + i // 8, c=("1",))
        for i in range(n)
    ]
    return stamp(raws, received_ms=1718900005000)


def items(resources: Resources) -> dict[tuple[str, str], dict[str, Any]]:
    deserializer = TypeDeserializer()
    found = {}
    for page in resources.dynamodb.get_paginator("scan").paginate(TableName=resources.table):
        for raw in page["Items"]:
            item = {name: deserializer.deserialize(value) for name, value in raw.items()}
            found[item["s"], item["sk"]] = item
    return found


def dlq_bodies(resources: Resources) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        messages = resources.sqs.receive_message(
            QueueUrl=resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return bodies
        bodies += [json.loads(m["Body"]) for m in messages]
