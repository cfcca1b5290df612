"""moto's DynamoDB item construction made linear (tradestream.local.moto_items): installed in the
moto process the stack and the tests run, with moto's own answers unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tradestream import aws
from tradestream.local import moto_items
from tradestream.local.moto_server import MotoHandle


@pytest.fixture
def table(aws_env: str, unique: str) -> str:
    name = f"items-{unique}"
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "s", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "s", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def item(key: str, padding: int) -> dict[str, Any]:
    return {
        "s": {"S": key},
        "p": {"N": "187.25"},
        "c": {"L": [{"S": "1"}, {"S": "12"}]},
        "m": {"M": {"x": {"N": "1"}, "y": {"BOOL": True}}},
        "pad": {"S": "x" * padding},
    }


def test_it_installs_on_this_moto() -> None:
    # The guard: if moto changed shape, the stack would run on moto's own constructor.
    assert moto_items.install() is True


def test_items_read_back_as_written(moto: MotoHandle, table: str) -> None:
    dynamodb = aws.client("dynamodb")
    written = [item(f"k{i}", i) for i in range(30)]
    for batch in (written[:25], written[25:]):
        puts = [{"PutRequest": {"Item": i}} for i in batch]
        dynamodb.batch_write_item(RequestItems={table: puts})
    read = dynamodb.scan(TableName=table)["Items"]
    assert sorted(read, key=lambda i: i["s"]["S"]) == sorted(written, key=lambda i: i["s"]["S"])


@pytest.mark.parametrize("call", ["put_item", "batch_write_item"])
def test_an_item_above_the_limit_is_still_refused(moto: MotoHandle, table: str, call: str) -> None:
    # GIVEN an item just above DynamoDB's 400 KB (moto's own threshold, 405,000 bytes)
    big = item("big", 405_000)
    dynamodb = aws.client("dynamodb")
    # WHEN it is written
    write = {
        "put_item": lambda: dynamodb.put_item(TableName=table, Item=big),
        "batch_write_item": lambda: dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": big}}]}
        ),
    }[call]
    with pytest.raises(ClientError) as refused:
        write()
    # THEN moto refuses it as DynamoDB does, and one just below the limit goes in
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "maximum allowed size" in refused.value.response["Error"]["Message"]
    dynamodb.put_item(TableName=table, Item=item("fits", 400_000))
    assert "Item" in dynamodb.get_item(TableName=table, Key={"s": {"S": "fits"}})
