"""The fault proxy injects AWS-shaped partial failures over real HTTP, in front of moto server."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.faults import FaultProxy
from tradestream.local.moto_server import MotoHandle

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1}, region_name="us-east-1")


def _clients(url: str) -> tuple[object, object]:
    kinesis = boto3.client("kinesis", endpoint_url=url, config=NO_RETRIES)
    dynamodb = boto3.client("dynamodb", endpoint_url=url, config=NO_RETRIES)
    return kinesis, dynamodb


def _records_in_stream(kinesis: object, stream: str) -> list[bytes]:
    data = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:  # type: ignore[attr-defined]
        iterator = kinesis.get_shard_iterator(  # type: ignore[attr-defined]
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        data += [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]]  # type: ignore[attr-defined]
    return data


def test_put_records_share_fails_per_entry_and_only_the_rest_reach_the_stream(
    aws_env: str, moto: MotoHandle, unique: str
) -> None:
    # GIVEN a stream behind a proxy failing ~20% of PutRecords entries
    kinesis, _ = _clients(moto.url)
    stream = f"faults-{unique}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)  # type: ignore[attr-defined]
    with FaultProxy(moto.url, seed=7) as proxy:
        proxy.kinesis_put_failure_rate = 0.2
        via_proxy, _ = _clients(proxy.url)
        entries = [{"Data": json.dumps({"n": i}).encode(), "PartitionKey": "k"} for i in range(500)]
        # WHEN one PutRecords call goes through it
        response = via_proxy.put_records(StreamName=stream, Records=entries)  # type: ignore[attr-defined]
    # THEN the answer is HTTP 200 with per-entry error codes, in order, and they reconcile
    failed = [i for i, r in enumerate(response["Records"]) if "ErrorCode" in r]
    assert response["FailedRecordCount"] == len(failed) == proxy.injected["PutRecords:entries"]
    assert 60 <= len(failed) <= 140
    assert {response["Records"][i]["ErrorCode"] for i in failed} == {
        "ProvisionedThroughputExceededException"
    }
    stored = {json.loads(d)["n"] for d in _records_in_stream(kinesis, stream)}
    assert stored == set(range(500)) - set(failed)
    assert proxy.counts["PutRecords"] == 1


def test_batch_write_item_holds_back_unprocessed_items(
    aws_env: str, moto: MotoHandle, unique: str
) -> None:
    # GIVEN a table behind a proxy returning ~50% of items as unprocessed
    _, dynamodb = _clients(moto.url)
    table = f"faults-{unique}"
    dynamodb.create_table(  # type: ignore[attr-defined]
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
    )
    with FaultProxy(moto.url, seed=3) as proxy:
        proxy.dynamodb_unprocessed_rate = 0.5
        _, via_proxy = _clients(proxy.url)
        requests = [{"PutRequest": {"Item": {"k": {"S": str(i)}}}} for i in range(25)]
        # WHEN a batch is written through it
        response = via_proxy.batch_write_item(RequestItems={table: requests})  # type: ignore[attr-defined]
    # THEN the unprocessed items plus the stored items are exactly the batch
    unprocessed = {r["PutRequest"]["Item"]["k"]["S"] for r in response["UnprocessedItems"][table]}
    stored = {i["k"]["S"] for i in dynamodb.scan(TableName=table)["Items"]}  # type: ignore[attr-defined]
    assert unprocessed
    assert stored
    assert unprocessed.isdisjoint(stored)
    assert unprocessed | stored == {str(i) for i in range(25)}


def test_fail_next_answers_whole_calls_with_errors_then_recovers(
    aws_env: str, moto: MotoHandle, unique: str
) -> None:
    # GIVEN a proxy told to throttle the next two DescribeStreamSummary calls
    kinesis, _ = _clients(moto.url)
    stream = f"faults-{unique}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)  # type: ignore[attr-defined]
    with FaultProxy(moto.url) as proxy:
        proxy.throttle_next("DescribeStreamSummary", 2)
        via_proxy, _ = _clients(proxy.url)
        codes = []
        for _ in range(2):
            with pytest.raises(ClientError) as error:
                via_proxy.describe_stream_summary(StreamName=stream)  # type: ignore[attr-defined]
            codes.append(error.value.response["Error"]["Code"])
        # WHEN the budget of injected failures is spent
        summary = via_proxy.describe_stream_summary(StreamName=stream)  # type: ignore[attr-defined]
        # AND the endpoint goes down
        proxy.down = True
        with pytest.raises(ClientError) as down:
            via_proxy.describe_stream_summary(StreamName=stream)  # type: ignore[attr-defined]
    # THEN throttling came first, then success, then 503
    assert codes == ["ProvisionedThroughputExceededException"] * 2
    assert summary["StreamDescriptionSummary"]["StreamName"] == stream
    assert down.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert proxy.counts["DescribeStreamSummary"] == 4
