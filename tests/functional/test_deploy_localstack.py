"""`tradestream deploy --target localstack` (compose's one-shot deploy service) against moto server
standing in for LocalStack over HTTP: the local flavour only, the names and parameters the runtime
uses, so the runtime finds the stacks unchanged and nothing delivers a record twice; and destroy.
"""

from __future__ import annotations

import pytest

from ml.serve import start_in_thread
from tradestream import aws
from tradestream.deploy.api import deploy, destroy
from tradestream.local.runtime import embedded_stack
from tradestream.local.settings import LocalSettings


@pytest.fixture
def names(aws_env: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> LocalSettings:
    # compose gives the deploy service and the runtime these same variables
    monkeypatch.setenv("STREAM_NAME", f"trades-{unique}")
    monkeypatch.setenv("TABLE_NAME", f"stock_trades-{unique}")
    monkeypatch.setenv("BUCKET_NAME", f"lake-{unique}")
    return LocalSettings()


def last_updated(stack_names: list[str]) -> dict[str, object]:
    cloudformation = aws.client("cloudformation")
    return {
        name: cloudformation.describe_stacks(StackName=name)["Stacks"][0].get("LastUpdatedTime")
        for name in stack_names
    }


def test_localstack_target_deploys_the_local_flavour_the_runtime_then_reuses(
    names: LocalSettings,
) -> None:
    # WHEN the localstack target deploys
    outputs = deploy("localstack")

    # THEN the stream, the table and its DLQ, and the lake bucket exist, under the given names
    assert (outputs["stream"], outputs["table"], outputs["bucket"]) == (
        names.stream_name,
        names.table_name,
        names.bucket_name,
    )
    aws.client("kinesis").describe_stream_summary(StreamName=names.stream_name)
    aws.client("dynamodb").describe_table(TableName=names.table_name)
    aws.client("sqs").get_queue_attributes(QueueUrl=outputs["dlq_url"])
    aws.client("s3").head_bucket(Bucket=names.bucket_name)
    # AND no function, mapping or delivery stream: the runtime runs those stages, once
    stream_arn = outputs["stream_arn"]
    mappings = aws.client("lambda").list_event_source_mappings(EventSourceArn=stream_arn)
    assert mappings["EventSourceMappings"] == []
    functions = aws.client("lambda").list_functions()["Functions"]
    assert not [f for f in functions if names.table_name in str(f.get("Environment"))]
    firehose = aws.client("firehose").list_delivery_streams()["DeliveryStreamNames"]
    assert not [d for d in firehose if names.bucket_name in d]

    # WHEN the runtime starts on that endpoint (deploy-or-reuse, as in compose)
    stacks = outputs["stacks"].split(",")
    before = last_updated(stacks)
    with embedded_stack(run_mapping=False, model_server=start_in_thread) as stack:
        assert stack.stack.stream_arn == stream_arn
    # THEN it found every stack as the deploy left it
    assert last_updated(stacks) == before


def test_localstack_destroy_deletes_the_stacks_and_keeps_the_lake(names: LocalSettings) -> None:
    # GIVEN a localstack deploy
    outputs = deploy("localstack")
    stacks = outputs["stacks"].split(",")

    # WHEN destroyed
    report = destroy("localstack")

    # THEN its three stacks are deleted and the lake bucket, the system of record, kept
    assert {report[name] for name in stacks} == {"deleted"}
    live = {
        s["StackName"]
        for s in aws.client("cloudformation").describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    }
    assert not live & set(stacks)
    aws.client("s3").head_bucket(Bucket=names.bucket_name)
    assert report[f"s3://{names.bucket_name}"].startswith("kept")
    # AND with --delete-data a second destroy removes the bucket too
    again = destroy("localstack", delete_data=True)
    assert {again[name] for name in stacks} == {"absent"}
    assert again[f"s3://{names.bucket_name}"] == "deleted"
