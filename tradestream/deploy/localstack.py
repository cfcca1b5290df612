"""The LocalStack target: the stacks the local runtime needs, and nothing LocalStack's free
edition cannot create or that would deliver a record twice.

Deployed: stream.yaml, and hotstore.yaml and lake.yaml in their ``Flavour=local`` (the table,
the DLQ and the lake bucket), with the very names and parameters the runtime service deploys with
(``tradestream.local.runtime``), so when it starts it finds the stacks unchanged.

Not deployed, and why:

- the hotstore and enrich functions, the event source mapping and the delivery stream: the
  compose ``runtime`` service runs those stages (one runner per stage, never two);
- inference.yaml (SageMaker), producer.yaml and ingest.yaml (ECS, ELBv2): not in LocalStack's
  free edition; compose runs the model server, the producer and the ingest API as containers;
- alarms.yaml: its metrics come from Lambda, Firehose, SageMaker and the load balancer, none of
  which run in LocalStack, so the alarms could never fire;
- artifacts.yaml: there is no function zip or model for LocalStack to load.

These stacks go through CreateStack / UpdateStack, like the runtime's own deploy of them, so both
keep one definition of "unchanged".
"""

from __future__ import annotations

from tradestream import aws
from tradestream.cfn.stacks import Stacks, stack_name
from tradestream.deploy.artifacts import delete_bucket
from tradestream.local.hot_path import deploy as deploy_hot_path
from tradestream.local.lake import deploy_lake
from tradestream.local.settings import LocalSettings

# What LocalStack must run for this target (compose's SERVICES; checked by tests/infra).
LOCALSTACK_SERVICES = ("cloudformation", "dynamodb", "iam", "kinesis", "s3", "sqs", "sts")


def deploy_localstack(timeout_s: float) -> dict[str, str]:
    settings = LocalSettings()
    stack = deploy_hot_path(
        stream_name=settings.stream_name,
        table_name=settings.table_name,
        hotstore_parameters=settings.hotstore_parameters(),
        timeout_s=timeout_s,
    )
    lake = deploy_lake(
        stream_arn=stack.stream_arn,
        bucket_name=settings.bucket_name,
        endpoint_name=settings.endpoint_name,
        parameters=settings.lake_parameters(),
        timeout_s=timeout_s,
    )
    return {
        "target": "localstack",
        "aws_endpoint": stack.endpoint_url,
        "region": stack.region,
        "stream": stack.stream_name,
        "stream_arn": stack.stream_arn,
        "table": stack.table_name,
        "dlq_url": stack.dlq_url,
        "bucket": lake.bucket_name,
        "stacks": ",".join((stack.stream_stack_name, stack.hotstore_stack_name, lake.stack_name)),
    }


def destroy_localstack(*, delete_data: bool, timeout_s: float) -> dict[str, str]:
    settings = LocalSettings()
    stacks = Stacks(aws.client("cloudformation"), change_sets=True, timeout_s=timeout_s, poll_s=1)
    report: dict[str, str] = {}
    for name in (
        stack_name("lake", settings.bucket_name),
        stack_name("hotstore", settings.table_name),
        stack_name("stream", settings.stream_name),
    ):
        report[name] = "deleted" if stacks.delete(name) else "absent"
    # The lake bucket outlives its stack (DeletionPolicy: Retain): it is the system of record.
    bucket = settings.bucket_name
    if delete_data:
        report[f"s3://{bucket}"] = (
            "deleted" if delete_bucket(aws.client("s3"), bucket) else "absent"
        )
    else:
        report[f"s3://{bucket}"] = "kept (--delete-data removes it)"
    return report
