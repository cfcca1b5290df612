"""Properties an endpoint's CloudFormation dropped, applied through the service APIs.

moto's CloudFormation drops some properties that its service APIs do support. After a stack is
complete, these read the properties from the template and apply them through the service APIs when
the endpoint reports them off (a no-op on AWS, where CloudFormation applied them):

- DynamoDB ``TimeToLiveSpecification`` (UpdateTimeToLive) and
  ``PointInTimeRecoverySpecification`` (UpdateContinuousBackups), both supported by moto;
- Kinesis ``StreamEncryption`` (StartStreamEncryption), supported by moto;
- the lake bucket's versioning, public access block, ownership controls, lifecycle rules,
  encryption and (over TLS endpoints) its TLS-only bucket policy.

Left as moto has them: the table's ``SSESpecification`` (moto reads a different key and
describes no SSE; its API has no call to enable it afterwards) and the stream's mode (moto
creates PROVISIONED streams only, so the default StreamMode is PROVISIONED).

Each is best effort: an endpoint without one of these APIs still gets a working stack, only
without that setting, and a warning says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from tradestream.cfn.template import Resolver, TemplateError, find_resource

log = logging.getLogger(__name__)

_BUCKET = "AWS::S3::Bucket"
_BUCKET_POLICY = "AWS::S3::BucketPolicy"


def _properties(
    template: Mapping[str, Any],
    resource_type: str,
    resolver: Resolver,
    logical_id: str | None = None,
) -> dict[str, Any]:
    _, resource = find_resource(template, resource_type, logical_id)
    resolved = resolver.resolve(resource.get("Properties", {}))
    return resolved if isinstance(resolved, dict) else {}


def apply_table_settings(
    dynamodb: Any, table_name: str, template: Mapping[str, Any], resolver: Resolver
) -> None:
    # The trade table; the local flavour's checkpoint table needs neither TTL nor PITR applied.
    props = _properties(template, "AWS::DynamoDB::Table", resolver, logical_id="Table")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and _truthy(ttl.get("Enabled")):
        status = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            log.info("enabling TTL on %s (%s)", table_name, ttl["AttributeName"])
            dynamodb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and _truthy(pitr.get("PointInTimeRecoveryEnabled")):
        backups = dynamodb.describe_continuous_backups(TableName=table_name)
        description = backups["ContinuousBackupsDescription"]
        pitr_status = description.get("PointInTimeRecoveryDescription", {})
        if pitr_status.get("PointInTimeRecoveryStatus") != "ENABLED":
            log.info("enabling point-in-time recovery on %s", table_name)
            dynamodb.update_continuous_backups(
                TableName=table_name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )


def apply_stream_settings(
    kinesis: Any, stream_arn: str, template: Mapping[str, Any], resolver: Resolver
) -> None:
    props = _properties(template, "AWS::Kinesis::Stream", resolver)
    encryption = props.get("StreamEncryption")
    summary = kinesis.describe_stream_summary(StreamARN=stream_arn)["StreamDescriptionSummary"]
    _check_retention(summary, props.get("RetentionPeriodHours"))
    if encryption and summary.get("EncryptionType", "NONE") == "NONE":
        log.info("enabling %s encryption on %s", encryption["EncryptionType"], stream_arn)
        kinesis.start_stream_encryption(
            StreamARN=stream_arn,
            EncryptionType=encryption["EncryptionType"],
            KeyId=encryption["KeyId"],
        )
        # The stream is UPDATING while encryption turns on (Kinesis, kinesis-mock); what comes
        # next (writers, the next deploy's update) needs it ACTIVE.
        kinesis.get_waiter("stream_exists").wait(
            StreamARN=stream_arn, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )


def _check_retention(summary: Mapping[str, Any], wanted: Any) -> None:
    # LocalStack answers UPDATE_COMPLETE to a retention change it did not make: say so rather
    # than let the update pass as made.
    has = summary.get("RetentionPeriodHours")
    if wanted is not None and has is not None and int(wanted) != int(has):
        log.warning(
            "stream %s keeps records %s h, not the RetentionPeriodHours=%s its stack was deployed "
            "with: the endpoint reported the stack complete without applying it. Delete the "
            "stream stack and deploy again to apply it.",
            summary.get("StreamName"),
            has,
            wanted,
        )


def best_effort(what: str, apply: Callable[[], None]) -> None:
    # An endpoint without these APIs still gets a working stack, only without the setting.
    try:
        apply()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in _UNSUPPORTED_CODES:
            raise
        log.warning("the endpoint does not support applying %s (%s); skipped", what, code)


_UNSUPPORTED_CODES = {
    "UnknownOperationException",
    "NotImplemented",
    "NotImplementedError",
    "InvalidAction",
    "InternalFailure",
}


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# --- the lake bucket ------------------------------------------------------------------------------


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
