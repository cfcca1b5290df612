"""Deploy the hot path's templates through the CloudFormation API of whatever endpoint the AWS
clients reach (moto server, LocalStack, or AWS), and describe what was deployed.

Two stacks, named after the resources so several independent copies fit in one endpoint:
``tradestream-stream-<stream name>`` (stream.yaml) and ``tradestream-hotstore-<table name>``
(hotstore.yaml, ``Flavour=local`` by default: table, DLQ and the runtime's checkpoint table only;
the function and its event source mapping are emulated in-process from the template's settings).

Deploying is idempotent: an existing stack with the same template and parameters is reused as is;
one that differs is updated; one left in ROLLBACK_COMPLETE by a failed create is replaced.

Properties the endpoint's CloudFormation dropped are applied afterwards
(``tradestream.cfn.fixups``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tradestream import aws
from tradestream.cfn.fixups import apply_stream_settings, apply_table_settings, best_effort
from tradestream.cfn.stacks import deploy_template, stack_name
from tradestream.cfn.template import (
    HOTSTORE_TEMPLATE,
    STREAM_TEMPLATE,
    template_path,
)
from tradestream.local.esm.settings import MappingSettings, mapping_settings
from tradestream.local.lambda_runtime import FunctionSettings, function_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployedStack:
    region: str
    endpoint_url: str
    stream_name: str
    stream_arn: str
    table_name: str
    dlq_url: str
    dlq_arn: str
    mapping: MappingSettings
    function: FunctionSettings  # what to run in-process; on AWS, what Lambda runs
    stream_stack_name: str
    hotstore_stack_name: str
    function_name: str | None = None  # only with Flavour=aws
    checkpoint_table: str | None = None  # only with Flavour=local: the runtime's leases


def deploy(
    endpoint_url: str | None = None,
    *,
    stream_name: str = "trades",
    table_name: str = "stock_trades",
    flavour: str = "local",
    dlq_name: str | None = None,
    shard_count: int = 2,
    stream_parameters: Mapping[str, str] | None = None,
    hotstore_parameters: Mapping[str, str] | None = None,
    template_dir: Path | None = None,
    timeout_s: float = 900,
) -> DeployedStack:
    """Create or update both stacks and return what they deployed.

    ``endpoint_url`` overrides the standard ``AWS_ENDPOINT_URL*`` variables for this call.
    ``stream_parameters`` / ``hotstore_parameters`` pass any other template parameter (e.g.
    ``CodeS3Bucket`` for ``flavour="aws"``); the explicit arguments win over them.
    """
    clients = _Clients(endpoint_url)
    region = aws.region()

    stream_params = {
        **(stream_parameters or {}),
        "StreamName": stream_name,
        "ShardCount": str(shard_count),
    }
    cfn = clients.cloudformation
    stream = deploy_template(
        cfn,
        stack_name("stream", stream_name),
        template_path(STREAM_TEMPLATE, template_dir),
        stream_params,
        timeout_s,
    )
    stream_arn = stream.outputs["StreamArn"]
    account_id = stream_arn.split(":")[4]

    hotstore_params = {
        **(hotstore_parameters or {}),
        "Flavour": flavour,
        "StreamArn": stream_arn,
        "TableName": table_name,
        "DeadLetterQueueName": dlq_name or _queue_name(f"{table_name}-dlq"),
    }
    hotstore = deploy_template(
        cfn,
        stack_name("hotstore", table_name),
        template_path(HOTSTORE_TEMPLATE, template_dir),
        hotstore_params,
        timeout_s,
    )
    outputs = hotstore.outputs
    hotstore_resolver = hotstore.resolver(region, account_id)
    best_effort(
        "table TTL / point-in-time recovery",
        lambda: apply_table_settings(
            clients.dynamodb, outputs["TableName"], hotstore.template.parsed, hotstore_resolver
        ),
    )
    best_effort(
        "stream encryption",
        lambda: apply_stream_settings(
            clients.kinesis,
            stream_arn,
            stream.template.parsed,
            stream.resolver(region, account_id),
        ),
    )

    return DeployedStack(
        region=region,
        endpoint_url=clients.cloudformation.meta.endpoint_url,
        stream_name=stream.outputs["StreamName"],
        stream_arn=stream_arn,
        table_name=outputs["TableName"],
        dlq_url=outputs["DeadLetterQueueUrl"],
        dlq_arn=outputs["DeadLetterQueueArn"],
        mapping=mapping_settings(hotstore.template.parsed, hotstore_resolver),
        function=function_settings(hotstore.template.parsed, hotstore_resolver),
        stream_stack_name=stream.outcome.name,
        hotstore_stack_name=hotstore.outcome.name,
        function_name=outputs.get("FunctionName"),
        checkpoint_table=outputs.get("CheckpointTableName"),
    )


def _queue_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:80]


class _Clients:
    def __init__(self, endpoint_url: str | None) -> None:
        extra = {"endpoint_url": endpoint_url} if endpoint_url else {}
        self.cloudformation = aws.client("cloudformation", **extra)
        self.dynamodb = aws.client("dynamodb", **extra)
        self.kinesis = aws.client("kinesis", **extra)
