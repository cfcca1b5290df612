"""The local deploy: the templates through moto server's CloudFormation API, over real HTTP."""

from __future__ import annotations

import json
import logging
import time

import pytest

from tradestream import aws
from tradestream.local.hot_path import DeployedStack, deploy, stack_name


@pytest.fixture
def stack(aws_env: str, unique: str) -> DeployedStack:
    return deploy(stream_name=f"trades-{unique}", table_name=f"stock_trades-{unique}")


def test_deploy_creates_the_stream_table_and_queue_and_reports_them(
    stack: DeployedStack, unique: str
) -> None:
    # GIVEN a local deploy (fixture) WHEN the resources are described
    kinesis, dynamodb, sqs = aws.client("kinesis"), aws.client("dynamodb"), aws.client("sqs")
    summary = kinesis.describe_stream_summary(StreamName=f"trades-{unique}")
    table = dynamodb.describe_table(TableName=f"stock_trades-{unique}")["Table"]
    queue = sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["All"])["Attributes"]

    # THEN the outputs name them
    assert stack.stream_name == f"trades-{unique}"
    assert stack.stream_arn == summary["StreamDescriptionSummary"]["StreamARN"]
    assert stack.table_name == f"stock_trades-{unique}"
    assert stack.dlq_arn == queue["QueueArn"]
    assert stack.dlq_arn.endswith(f":stock_trades-{unique}-dlq")
    assert stack.region == "us-east-1"
    assert stack.function_name is None
    # AND the stream has the template's shards and (applied after deploy) encryption
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2
    assert summary["StreamDescriptionSummary"]["EncryptionType"] == "KMS"
    # AND the table has the hot store's key schema, billing, TTL and point-in-time recovery
    assert table["KeySchema"] == [
        {"AttributeName": "s", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert sorted(
        (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
    ) == [
        ("s", "S"),
        ("sk", "S"),
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires_at",
    }
    backups = dynamodb.describe_continuous_backups(TableName=stack.table_name)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    # AND the DLQ keeps messages 14 days, encrypted
    assert queue["MessageRetentionPeriod"] == "1209600"
    assert queue["SqsManagedSseEnabled"] == "true"
    # AND the mapping settings were read from the template, pointing at this DLQ
    assert stack.mapping.batch_size == 500
    assert stack.mapping.on_failure_destination_arn == stack.dlq_arn
    # AND the function to run in-process gets the environment the template gives it
    assert stack.function.handler == "lambdas.hotstore.handler.handler"
    assert (stack.function.timeout_s, stack.function.memory_limit_in_mb) == (60, 256)
    assert stack.function.environment == {
        "TABLE_NAME": stack.table_name,
        "DLQ_URL": stack.dlq_url,
        "TTL_DAYS": "30",
        "POWERTOOLS_SERVICE_NAME": "hotstore",
        "POWERTOOLS_METRICS_NAMESPACE": "tradestream",
    }


def test_local_flavour_creates_no_lambda_function_nor_mapping(stack: DeployedStack) -> None:
    # GIVEN a local deploy WHEN Lambda and CloudFormation are asked what exists
    lambda_ = aws.client("lambda")
    resources = aws.client("cloudformation").describe_stack_resources(
        StackName=stack.hotstore_stack_name
    )["StackResources"]

    # THEN the stack holds only the tables (trades, the runtime's checkpoints) and the queue,
    # and Lambda has nothing of ours (moto also lists the skipped conditional resources, as
    # entries without a logical id)
    types = sorted(
        (r["LogicalResourceId"], r["ResourceType"]) for r in resources if "LogicalResourceId" in r
    )
    assert types == [
        ("CheckpointTable", "AWS::DynamoDB::Table"),
        ("DeadLetterQueue", "AWS::SQS::Queue"),
        ("Table", "AWS::DynamoDB::Table"),
    ]
    assert stack.checkpoint_table == f"{stack.table_name}-checkpoints"
    functions = [f["FunctionName"] for f in lambda_.list_functions()["Functions"]]
    assert stack.function.function_name not in functions
    mappings = lambda_.list_event_source_mappings(EventSourceArn=stack.stream_arn)
    assert mappings["EventSourceMappings"] == []


def test_putting_2500_records_is_fast_because_moto_runs_no_function(stack: DeployedStack) -> None:
    # GIVEN the locally deployed stream, and no function or mapping moto would run through Docker
    lambda_, kinesis = aws.client("lambda"), aws.client("kinesis")
    # (scoped to this stack: other tests may share the moto server)
    mappings = lambda_.list_event_source_mappings(EventSourceArn=stack.stream_arn)
    assert mappings["EventSourceMappings"] == []
    functions = [f["FunctionName"] for f in lambda_.list_functions()["Functions"]]
    assert stack.function.function_name not in functions
    batches = [
        [
            {"Data": json.dumps({"n": n}).encode(), "PartitionKey": f"K{n % 9}"}
            for n in range(i, i + 500)
        ]
        for i in range(0, 2500, 500)
    ]

    # WHEN 2,500 records are put, 500 per call
    started = time.monotonic()
    failed = sum(
        kinesis.put_records(StreamName=stack.stream_name, Records=b)["FailedRecordCount"]
        for b in batches
    )
    elapsed = time.monotonic() - started

    # THEN every record is accepted well within a second or two
    assert failed == 0
    assert elapsed < 2.0, f"2,500 records took {elapsed:.2f}s"


def test_deploying_again_reuses_the_stacks_and_keeps_the_data(
    stack: DeployedStack, unique: str
) -> None:
    # GIVEN a deployed stack holding a record and an item
    kinesis, dynamodb = aws.client("kinesis"), aws.client("dynamodb")
    kinesis.put_record(StreamName=stack.stream_name, Data=b"kept", PartitionKey="AAPL")
    dynamodb.put_item(TableName=stack.table_name, Item={"s": {"S": "AAPL"}, "sk": {"S": "1#a"}})

    # WHEN the same deploy runs again
    again = deploy(stream_name=f"trades-{unique}", table_name=f"stock_trades-{unique}")

    # THEN it describes the same resources and nothing was recreated
    assert again == stack
    assert dynamodb.scan(TableName=stack.table_name)["Count"] == 1
    assert _stream_data(stack) == [b"kept"]
    status = aws.client("cloudformation").describe_stacks(StackName=stack.hotstore_stack_name)
    assert status["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_a_changed_parameter_updates_the_stack_in_place(stack: DeployedStack, unique: str) -> None:
    # GIVEN a deployed stream holding a record
    kinesis = aws.client("kinesis")
    kinesis.put_record(StreamName=stack.stream_name, Data=b"kept", PartitionKey="AAPL")

    # WHEN it is deployed again with a longer retention
    updated = deploy(
        stream_name=f"trades-{unique}",
        table_name=f"stock_trades-{unique}",
        stream_parameters={"RetentionPeriodHours": "48"},
    )

    # THEN the stack was updated, the same stream now keeps records 48 hours and still has them
    status = aws.client("cloudformation").describe_stacks(StackName=stack.stream_stack_name)
    assert status["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    summary = kinesis.describe_stream_summary(StreamName=stack.stream_name)
    assert summary["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2
    assert updated.stream_arn == stack.stream_arn
    assert _stream_data(stack) == [b"kept"]


def test_independent_copies_share_one_endpoint(aws_env: str, unique: str) -> None:
    # GIVEN two deploys with different names into the same moto server
    first = deploy(stream_name=f"a-{unique}", table_name=f"a_trades-{unique}")
    second = deploy(stream_name=f"b-{unique}", table_name=f"b_trades-{unique}")

    # THEN their stacks and resources are distinct
    assert first.hotstore_stack_name != second.hotstore_stack_name
    assert {first.stream_arn, first.dlq_url}.isdisjoint({second.stream_arn, second.dlq_url})


def test_stack_names_are_valid_whatever_the_resource_name() -> None:
    # GIVEN resource names with characters stack names refuse, or too long
    # WHEN stack names are derived THEN they are valid and distinct
    assert stack_name("hotstore", "stock_trades.v2") == "tradestream-hotstore-stock-trades-v2"
    long_a, long_b = stack_name("stream", "x" * 128), stack_name("stream", "x" * 127 + "y")
    assert len(long_a) == len(long_b) == 128
    assert long_a != long_b


def _stream_data(stack: DeployedStack) -> list[bytes]:
    kinesis = aws.client("kinesis")
    data = []
    for shard in kinesis.list_shards(StreamName=stack.stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stack.stream_name,
            ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
        data += [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    return data


def test_a_retention_update_the_endpoint_applies_passes_without_a_warning(
    aws_env: str, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a stream deployed with 24 h retention
    names = {"stream_name": f"ret-{unique}", "table_name": f"ret-{unique}"}
    deploy(**names, stream_parameters={"RetentionPeriodHours": "24"})

    # WHEN its stack is updated to 48 h on an endpoint that applies the update (moto)
    with caplog.at_level(logging.WARNING, logger="tradestream"):
        stack = deploy(**names, stream_parameters={"RetentionPeriodHours": "48"})

    # THEN the stream keeps records 48 h and deploy read it back without complaint
    # (tests/localstack/test_deploy.py: the warning when the endpoint did not apply it)
    summary = aws.client("kinesis").describe_stream_summary(StreamARN=stack.stream_arn)
    assert summary["StreamDescriptionSummary"]["RetentionPeriodHours"] == 48
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.messages
