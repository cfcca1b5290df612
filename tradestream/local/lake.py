"""Deploy the lake template through the CloudFormation API of whatever endpoint the AWS clients
reach (moto server, LocalStack, or AWS), and describe what the Firehose emulation needs.

One stack, ``tradestream-lake-<bucket name>`` (lake.yaml, ``Flavour=local`` by default: the bucket
only; the delivery stream is emulated in-process from the template's settings and the enrich
function runs in-process too). Deploying is idempotent, as for the hot path's stacks (the same
helpers in ``tradestream.local.hot_path`` create, update or reuse it).

moto's CloudFormation creates the bucket with its encryption and tags only, and cannot create a
bucket policy. After the stack is complete, ``deploy_lake`` reads the rest from the template and
applies it through the S3 API when the endpoint reports it off (a no-op on AWS, where
CloudFormation applied it): versioning, the public access block, ownership controls, the
lifecycle rules and default encryption. The TLS-only bucket policy (its resource carries
``Condition: OnAws``) goes through PutBucketPolicy only when the endpoint is reached over HTTPS:
moto enforces bucket policies, and over a plain-HTTP endpoint that policy would (rightly) deny
every request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from tradestream import aws
from tradestream.cfn.template import (
    FunctionSettings,
    Resolver,
    TemplateError,
    find_resource,
    function_settings,
    template_path,
)
from tradestream.local.firehose.settings import (
    LAKE_TEMPLATE,
    DeliveryStreamSettings,
    delivery_stream_settings,
)
from tradestream.local.hot_path import StackTemplate, best_effort, ensure_stack, stack_name

log = logging.getLogger(__name__)

_BUCKET = "AWS::S3::Bucket"
_BUCKET_POLICY = "AWS::S3::BucketPolicy"


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
    stack = ensure_stack(
        cloudformation,
        stack_name("lake", bucket_name),
        StackTemplate.load(template_path(LAKE_TEMPLATE, template_dir)),
        wanted,
        timeout_s,
    )
    template = stack.template.parsed
    resolver = stack.resolver(region, stream_arn.split(":")[4])
    bucket = stack.outputs["BucketName"]
    endpoint = str(cloudformation.meta.endpoint_url)
    apply_bucket_settings(
        s3, bucket, template, resolver, tls_only_policy=urlsplit(endpoint).scheme == "https"
    )
    settings = delivery_stream_settings(template, resolver)
    prefixes = settings.prefixes()
    return DeployedLake(
        region=region,
        endpoint_url=cloudformation.meta.endpoint_url,
        stack_name=stack.name,
        bucket_name=bucket,
        bucket_arn=stack.outputs["BucketArn"],
        delivery_stream=settings,
        function=function_settings(template, resolver),
        data_prefix=prefixes.data.static_head,
        error_prefix=prefixes.error.static_head,
        function_name=stack.outputs.get("FunctionName"),
        delivery_stream_arn=stack.outputs.get("DeliveryStreamArn"),
    )


# --- what moto's CloudFormation leaves out -------------------------------------------------------


def apply_bucket_settings(
    s3: Any,
    bucket: str,
    template: Mapping[str, Any],
    resolver: Resolver,
    *,
    tls_only_policy: bool,
) -> None:
    """Apply the template's bucket settings the endpoint does not report, one API call each.

    ``tls_only_policy`` also applies the template's bucket policy (deny unless TLS).
    """
    _, resource = find_resource(template, _BUCKET)
    props = resolver.resolve(resource.get("Properties", {}))
    steps: list[tuple[str, Callable[[], None]]] = []
    if "BucketEncryption" in props:
        steps.append(("encryption", lambda: _encryption(s3, bucket, props["BucketEncryption"])))
    if "VersioningConfiguration" in props:
        steps.append(("versioning", lambda: _versioning(s3, bucket, props)))
    if "PublicAccessBlockConfiguration" in props:
        block = props["PublicAccessBlockConfiguration"]
        steps.append(("public access block", lambda: _public_access_block(s3, bucket, block)))
    if "OwnershipControls" in props:
        steps.append(("ownership", lambda: _ownership(s3, bucket, props["OwnershipControls"])))
    if "LifecycleConfiguration" in props:
        rules = props["LifecycleConfiguration"]["Rules"]
        steps.append(("lifecycle", lambda: _lifecycle(s3, bucket, rules)))
    policy = bucket_policy(template, resolver)
    if policy is not None and tls_only_policy:
        steps.append(("policy", lambda: _policy(s3, bucket, policy)))
    for what, step in steps:
        best_effort(f"the bucket's {what}", step)


def _absent(call: Callable[[], Any], *missing_codes: str) -> bool:
    """True when the getter says the setting does not exist."""
    try:
        call()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in missing_codes:
            return True
        raise
    return False


def _encryption(s3: Any, bucket: str, encryption: Mapping[str, Any]) -> None:
    if not _absent(
        lambda: s3.get_bucket_encryption(Bucket=bucket),
        "ServerSideEncryptionConfigurationNotFoundError",
    ):
        return
    rules = [
        {
            "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
            "BucketKeyEnabled": _truthy(rule.get("BucketKeyEnabled", False)),
        }
        for rule in encryption["ServerSideEncryptionConfiguration"]
    ]
    log.info("enabling default encryption on %s", bucket)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})


def _versioning(s3: Any, bucket: str, props: Mapping[str, Any]) -> None:
    status = props["VersioningConfiguration"]["Status"]
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != status:
        log.info("setting versioning %s on %s", status, bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def _public_access_block(s3: Any, bucket: str, block: Mapping[str, Any]) -> None:
    if _absent(
        lambda: s3.get_public_access_block(Bucket=bucket),
        "NoSuchPublicAccessBlockConfiguration",
    ):
        log.info("blocking public access to %s", bucket)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={k: _truthy(v) for k, v in block.items()},
        )


def _ownership(s3: Any, bucket: str, controls: Mapping[str, Any]) -> None:
    if _absent(
        lambda: s3.get_bucket_ownership_controls(Bucket=bucket),
        "OwnershipControlsNotFoundError",
    ):
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=dict(controls))


def _lifecycle(s3: Any, bucket: str, rules: list[Mapping[str, Any]]) -> None:
    if _absent(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
        "NoSuchLifecycleConfiguration",
    ):
        log.info("setting %d lifecycle rules on %s", len(rules), bucket)
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [lifecycle_rule(rule) for rule in rules]},
        )


def lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in the shape of PutBucketLifecycleConfiguration."""
    known = {
        "Id",
        "Status",
        "Prefix",
        "ExpirationInDays",
        "Transitions",
        "NoncurrentVersionExpiration",
        "AbortIncompleteMultipartUpload",
    }
    unknown = set(rule) - known
    if unknown:
        raise TemplateError(f"lifecycle rule properties {sorted(unknown)} are not translated yet")
    api: dict[str, Any] = {
        "ID": rule["Id"],
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "Transitions" in rule:
        api["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["Transitions"]
        ]
    if "NoncurrentVersionExpiration" in rule:
        days = rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(days)}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    return api


def bucket_policy(template: Mapping[str, Any], resolver: Resolver) -> dict[str, Any] | None:
    """The template's bucket policy document, resolved; None if it has none."""
    try:
        _, resource = find_resource(template, _BUCKET_POLICY)
    except TemplateError:
        return None
    document = resolver.resolve(resource["Properties"]["PolicyDocument"])
    return dict(document)


def _policy(s3: Any, bucket: str, document: Mapping[str, Any]) -> None:
    if _absent(lambda: s3.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy"):
        log.info("applying the bucket policy to %s", bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")
