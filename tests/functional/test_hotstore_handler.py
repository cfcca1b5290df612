"""The hotstore handler against moto server over real HTTP: what lands in DynamoDB and the DLQ."""

from __future__ import annotations

import base64
import copy
import json
import math
from decimal import Decimal
from typing import Any

import pytest

from lambdas.hotstore import handler as hotstore_handler
from tests.support.hotstore import (
    FUNCTION,
    Resources,
    context,
    distinct_trades,
    dlq_bodies,
    items,
    sample,
    trades_event,
)
from tradestream.trade import now_ms


def test_sample_batch_lands_with_exact_count_and_decimal_values(resources: Resources) -> None:
    # GIVEN the sample batch: 8 records, 7 distinct trades (the last record replays the first)
    event = sample("kinesis_hotstore_batch.json")
    before = now_ms()

    # WHEN the Lambda entry point handles it
    response = hotstore_handler.handler(event, context())

    # THEN nothing is reported and exactly 7 items exist
    assert response == {"batchItemFailures": []}
    stored = items(resources)
    assert len(stored) == 7
    # AND the first trade is stored exactly, with the replay's receive time (last wins)
    item = stored["AAPL", "1718900000123#d18b60a364506c5500c34c96fac92b52"]
    ingested_at = item.pop("ingested_at")
    assert item == {
        "s": "AAPL",
        "sk": "1718900000123#d18b60a364506c5500c34c96fac92b52",
        "p": Decimal("187.23"),
        "v": Decimal("100.0"),
        "t": Decimal(1718900000123),
        "c": ["1", "12"],
        "id": "d18b60a364506c5500c34c96fac92b52",
        "rt": Decimal(1718900000174),
        "expires_at": Decimal(1718900000 + 30 * 86400),
    }
    assert before <= ingested_at <= now_ms()
    # AND a fractional crypto volume keeps its exact decimal digits
    btc = next(i for i in stored.values() if i["id"] == "63f27184b6aadbf4b9aec3e97698e113")
    assert (btc["p"], btc["v"]) == (Decimal("64987.12"), Decimal("0.00153"))
    assert "c" not in btc
    assert dlq_bodies(resources) == []


def test_delivering_the_same_records_again_creates_no_new_items(resources: Resources) -> None:
    # GIVEN the sample batch already handled once
    event = sample("kinesis_hotstore_batch.json")
    hotstore_handler.handler(event, context())
    first = items(resources)

    # WHEN the same records are delivered again (a retry, a bisected batch, a TRIM_HORIZON replay)
    response = hotstore_handler.handler(copy.deepcopy(event), context())

    # THEN no item is added and every item is equal, except the write time it records
    second = items(resources)
    assert response == {"batchItemFailures": []}
    assert len(first) == len(second) == 7
    assert set(first) == set(second)
    for key, item in first.items():
        again = dict(second[key])
        assert again.pop("ingested_at") >= item["ingested_at"]
        assert again == {k: v for k, v in item.items() if k != "ingested_at"}


def test_same_millisecond_distinct_trades_are_all_kept_and_range_by_time(
    resources: Resources,
) -> None:
    # GIVEN the sample batch: three AAPL trades in ms 1718900000123, two identical in every field
    hotstore_handler.handler(sample("kinesis_hotstore_batch.json"), context())

    # WHEN AAPL trades of that millisecond are queried by sort key range
    page = resources.dynamodb.query(
        TableName=resources.table,
        KeyConditionExpression="s = :s AND sk BETWEEN :from AND :to",
        ExpressionAttributeValues={
            ":s": {"S": "AAPL"},
            ":from": {"S": "1718900000123"},
            ":to": {"S": "1718900000123~"},
        },
    )

    # THEN all three are there, in distinct items
    assert page["Count"] == 3
    assert {(i["p"]["N"], i["v"]["N"]) for i in page["Items"]} == {
        ("187.23", "100.0"),
        ("187.24", "50.0"),
    }
    assert len({i["id"]["S"] for i in page["Items"]}) == 3


def test_poison_records_land_in_the_dlq_with_their_data_and_are_not_reported(
    resources: Resources,
) -> None:
    # GIVEN the poison sample: 3 trades and 3 poison records (CSV, negative price, a ping frame)
    event = sample("kinesis_hotstore_poison.json")

    # WHEN handled
    response = hotstore_handler.handler(event, context())

    # THEN nothing is reported, the 3 trades are written
    assert response == {"batchItemFailures": []}
    assert {i["id"] for i in items(resources).values()} == {
        "8f2212c0afff8dc1c65fc4cadaa5b5a0",
        "313afa228b92d2c415a00161e5df53e6",
        "f84d04debd3471c3fa8509737e16280d",
    }
    # AND the DLQ holds exactly the 3 poison records, each with its reason and original data
    bodies = sorted(dlq_bodies(resources), key=lambda b: int(b["sequenceNumber"]))
    poison = [event["Records"][i] for i in (1, 3, 4)]
    assert [b["reason"] for b in bodies] == ["InvalidJson", "InvalidTrade", "InvalidTrade"]
    for body, record in zip(bodies, poison, strict=True):
        assert body["source"] == "tradestream.hotstore"
        assert body["data"] == record["kinesis"]["data"]
        assert body["sequenceNumber"] == record["kinesis"]["sequenceNumber"]
        assert body["partitionKey"] == record["kinesis"]["partitionKey"]
        assert (
            body["approximateArrivalTimestamp"] == record["kinesis"]["approximateArrivalTimestamp"]
        )
        assert body["eventSourceARN"] == record["eventSourceARN"]
        assert body["shardId"] == "shardId-000000000000"
        assert body["functionName"] == FUNCTION
        assert body["error"]
    assert base64.b64decode(bodies[0]["data"]) == b"AAPL,187.25,20,1718900001001"


def test_n_distinct_trades_take_at_most_ceil_n_over_25_batch_write_calls(
    resources: Resources,
) -> None:
    # GIVEN 260 distinct trades, and a counter on the function's own DynamoDB client
    trades = distinct_trades(260)
    calls: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        # before-call sees the serialised request, i.e. what goes on the wire
        calls.append(len(json.loads(params["body"])["RequestItems"][resources.table]))

    client = hotstore_handler.hotstore().writer.client
    client.meta.events.register("before-call.dynamodb.BatchWriteItem", count)

    # WHEN they are handled in one batch
    response = hotstore_handler.handler(trades_event(trades), context())

    # THEN 11 calls of at most 25 items carried them all, and all landed
    assert response == {"batchItemFailures": []}
    assert len(calls) <= math.ceil(260 / 25) == 11
    assert sum(calls) == 260
    assert max(calls) <= 25
    assert len(items(resources)) == 260


def test_settings_and_clients_are_built_once_and_rebuilt_after_reset(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a first invocation
    hotstore_handler.handler({"Records": []}, context())
    first = hotstore_handler.hotstore()

    # WHEN invoked again THEN the same settings and clients serve it
    hotstore_handler.handler({"Records": []}, context())
    assert hotstore_handler.hotstore() is first
    assert first.settings.table_name == resources.table

    # AND after reset() the environment is read again, as on a cold start
    monkeypatch.setenv("TTL_DAYS", "3")
    hotstore_handler.reset()
    assert hotstore_handler.hotstore() is not first
    assert hotstore_handler.hotstore().settings.ttl_days == 3
