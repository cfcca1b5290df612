"""Deploy the lake template through the CloudFormation API of whatever endpoint the AWS clients
reach (moto server, LocalStack, or AWS), and describe what the Firehose emulation needs.

One stack, ``tradestream-lake-<bucket name>`` (lake.yaml, ``Flavour=local`` by default: the bucket
only; the delivery stream is emulated in-process from the template's settings and the enrich
function runs in-process too). Deploying is idempotent, as for the hot path's stacks (the same
engine, ``tradestream.cfn.stacks``, creates, updates or reuses it).

moto's CloudFormation creates the bucket with its encryption and tags only, and cannot create a
bucket policy. After the stack is complete, ``deploy_lake`` reads the rest from the template and
applies it through the S3 API (``tradestream.cfn.fixups``) when the endpoint reports it off (a
no-op on AWS, where CloudFormation applied it): versioning, the public access block, ownership
controls, the lifecycle rules and default encryption. The TLS-only bucket policy (its resource
carries ``Condition: OnAws``) goes through PutBucketPolicy only when the endpoint is reached over
HTTPS: moto enforces bucket policies, and over a plain-HTTP endpoint that policy would (rightly)
deny every request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tradestream import aws
from tradestream.cfn.fixups import apply_bucket_settings
from tradestream.cfn.stacks import deploy_template, stack_name
from tradestream.cfn.template import template_path
from tradestream.local.firehose.settings import (
    LAKE_TEMPLATE,
    DeliveryStreamSettings,
    delivery_stream_settings,
)
from tradestream.local.lambda_runtime import FunctionSettings, function_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployedLake:
    region: str
    endpoint_url: str
    stack_name: str
    bucket_name: str
    bucket_arn: str
    delivery_stream: DeliveryStreamSettings  # what the emulation runs; on AWS, what Firehose runs
    function: FunctionSettings  # the enrich function to run in-process
    data_prefix: str  # where lake objects are written ("trades/")
    error_prefix: str  # where failed records are written ("errors/")
    function_name: str | None = None  # only with Flavour=aws
    delivery_stream_arn: str | None = None  # only with Flavour=aws


def deploy_lake(
    endpoint_url: str | None = None,
    *,
    stream_arn: str,
    bucket_name: str,
    endpoint_name: str = "tradestream-model",
    flavour: str = "local",
    parameters: Mapping[str, str] | None = None,
    template_dir: Path | None = None,
    timeout_s: float = 900,
) -> DeployedLake:
    """Create or update the lake stack and return what it deployed.

    ``stream_arn`` is the trade stream (``DeployedStack.stream_arn``). ``parameters`` passes any
    other template parameter (buffering knobs, ``CompressionFormat``, ``CodeS3Bucket`` for
    ``flavour="aws"``); the explicit arguments win over them.
    """
    extra = {"endpoint_url": endpoint_url} if endpoint_url else {}
    cloudformation = aws.client("cloudformation", **extra)
    s3 = aws.client("s3", **extra)
    region = aws.region()
    wanted = {
        **(parameters or {}),
        "Flavour": flavour,
        "StreamArn": stream_arn,
        "BucketName": bucket_name,
        "EndpointName": endpoint_name,
    }
    path = template_path(LAKE_TEMPLATE, template_dir)
    stack = deploy_template(
        cloudformation, stack_name("lake", bucket_name), path, wanted, timeout_s
    )
    template = stack.template.parsed
    lake_resolver = stack.resolver(region, stream_arn.split(":")[4])
    bucket = stack.outputs["BucketName"]
    endpoint = str(cloudformation.meta.endpoint_url)
    apply_bucket_settings(
        s3, bucket, template, lake_resolver, tls_only_policy=urlsplit(endpoint).scheme == "https"
    )
    settings = delivery_stream_settings(template, lake_resolver)
    prefixes = settings.prefixes()
    return DeployedLake(
        region=region,
        endpoint_url=cloudformation.meta.endpoint_url,
        stack_name=stack.outcome.name,
        bucket_name=bucket,
        bucket_arn=stack.outputs["BucketArn"],
        delivery_stream=settings,
        function=function_settings(template, lake_resolver),
        data_prefix=prefixes.data.static_head,
        error_prefix=prefixes.error.static_head,
        function_name=stack.outputs.get("FunctionName"),
        delivery_stream_arn=stack.outputs.get("DeliveryStreamArn"),
    )
