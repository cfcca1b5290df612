"""Deploy the hot path's templates through the CloudFormation API of whatever endpoint the AWS
clients reach (moto server, LocalStack, or AWS), and describe what was deployed.

Two stacks, named after the resources so several independent copies fit in one endpoint:
``tradestream-stream-<stream name>`` (stream.yaml) and ``tradestream-hotstore-<table name>``
(hotstore.yaml, ``Flavour=local`` by default: table and DLQ only; the function and its event
source mapping are emulated in-process from the template's settings).

Deploying is idempotent: an existing stack with the same template and parameters is reused as is;
one that differs is updated; one left in ROLLBACK_COMPLETE by a failed create is replaced.

moto's CloudFormation drops some properties that its service APIs do support. After the stacks
are complete, ``deploy`` reads those properties from the template and applies them through the
service APIs when the endpoint reports them off (a no-op on AWS, where CloudFormation applied
them):

- DynamoDB ``TimeToLiveSpecification`` (UpdateTimeToLive) and
  ``PointInTimeRecoverySpecification`` (UpdateContinuousBackups), both supported by moto;
- Kinesis ``StreamEncryption`` (StartStreamEncryption), supported by moto.

Left as moto has them: the table's ``SSESpecification`` (moto reads a different key and
describes no SSE; its API has no call to enable it afterwards) and the stream's mode (moto
creates PROVISIONED streams only, so the default StreamMode is PROVISIONED).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tradestream import aws
from tradestream.local.template import (
    HOTSTORE_TEMPLATE,
    STREAM_TEMPLATE,
    FunctionSettings,
    MappingSettings,
    Resolver,
    effective_parameters,
    find_resource,
    function_settings,
    load_template,
    mapping_settings,
    resolver_for,
    template_path,
)

log = logging.getLogger(__name__)

_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
_FAILED = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_FAILED",
    "IMPORT_ROLLBACK_COMPLETE",
    "IMPORT_ROLLBACK_FAILED",
}


class StackDeployError(RuntimeError):
    """A stack that did not reach CREATE_COMPLETE / UPDATE_COMPLETE."""

    code = "StackDeployFailed"


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


def stack_name(kind: str, resource_name: str) -> str:
    """A valid stack name (``[A-Za-z][-A-Za-z0-9]{0,127}``) derived from a resource name."""
    name = f"tradestream-{kind}-" + re.sub(r"[^A-Za-z0-9-]", "-", resource_name)
    if len(name) > 128:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:119]}-{digest}"
    return name


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
    stream = ensure_stack(
        clients.cloudformation,
        stack_name("stream", stream_name),
        StackTemplate.load(template_path(STREAM_TEMPLATE, template_dir)),
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
    hotstore = ensure_stack(
        clients.cloudformation,
        stack_name("hotstore", table_name),
        StackTemplate.load(template_path(HOTSTORE_TEMPLATE, template_dir)),
        hotstore_params,
        timeout_s,
    )
    outputs = hotstore.outputs
    resolver = hotstore.resolver(region, account_id)
    best_effort(
        "table TTL / point-in-time recovery",
        lambda: _apply_table_settings(
            clients.dynamodb, outputs["TableName"], hotstore.template.parsed, resolver
        ),
    )
    best_effort(
        "stream encryption",
        lambda: _apply_stream_settings(
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
        mapping=mapping_settings(hotstore.template.parsed, resolver),
        function=function_settings(hotstore.template.parsed, resolver),
        stream_stack_name=stream.name,
        hotstore_stack_name=hotstore.name,
        function_name=outputs.get("FunctionName"),
    )


def _queue_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:80]


class _Clients:
    def __init__(self, endpoint_url: str | None) -> None:
        extra = {"endpoint_url": endpoint_url} if endpoint_url else {}
        self.cloudformation = aws.client("cloudformation", **extra)
        self.dynamodb = aws.client("dynamodb", **extra)
        self.kinesis = aws.client("kinesis", **extra)


# --- one stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackTemplate:
    body: str  # sent as is, so the stack holds the file, comments included
    parsed: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> StackTemplate:
        return cls(body=path.read_text(encoding="utf-8"), parsed=load_template(path))


@dataclass(frozen=True)
class _Stack:
    name: str
    template: StackTemplate
    parameters: dict[str, str]  # every parameter, defaults included, as deployed
    outputs: dict[str, str]

    def resolver(self, region: str, account_id: str) -> Resolver:
        return resolver_for(
            self.template.parsed,
            parameters=self.parameters,
            outputs=self.outputs,
            region=region,
            account_id=account_id,
            stack_name=self.name,
        )


def ensure_stack(
    cloudformation: Any,
    name: str,
    template: StackTemplate,
    parameters: Mapping[str, str],
    timeout_s: float,
) -> _Stack:
    """Create, update or reuse a stack; return it once it is complete."""
    wanted = effective_parameters(template.parsed, parameters)
    request: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": template.body,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in wanted.items()],
        # The aws flavour creates an IAM role (with a generated name).
        "Capabilities": ["CAPABILITY_IAM"],
    }
    stack = _describe(cloudformation, name)
    if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS"):
        stack = _wait(cloudformation, name, timeout_s, accept_failed=True)
    if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        log.warning("stack %s failed to create before; deleting it to create it again", name)
        cloudformation.delete_stack(StackName=name)
        _wait_deleted(cloudformation, name, timeout_s)
        stack = None

    if stack is None:
        log.info("creating stack %s", name)
        cloudformation.create_stack(**request, Tags=[{"Key": "project", "Value": "tradestream"}])
    elif stack["StackStatus"] not in _DONE:
        raise StackDeployError(
            f"stack {name} is {stack['StackStatus']} ({stack.get('StackStatusReason', '')}); "
            "fix or delete it in the CloudFormation console/API, then deploy again"
        )
    elif _unchanged(cloudformation, stack, template.body, wanted):
        return _Stack(name, template, wanted, _outputs(stack))
    else:
        log.info("updating stack %s", name)
        try:
            cloudformation.update_stack(**request)
        except ClientError as exc:
            if "No updates are to be performed" in str(exc):
                return _Stack(name, template, wanted, _outputs(stack))
            raise _update_refused(name, exc) from exc
        except BotoCoreError as exc:  # e.g. moto's HTML 500 page, which botocore cannot parse
            raise _update_refused(name, exc) from exc
    return _Stack(name, template, wanted, _outputs(_wait(cloudformation, name, timeout_s)))


def _update_refused(name: str, exc: Exception) -> StackDeployError:
    # moto 5.x updates resources whose Condition is false when a parameter they use changes, and
    # fails doing so: the local flavour's function and mapping use the mapping parameters.
    return StackDeployError(
        f"the endpoint could not update stack {name} ({exc}). moto cannot update a stack whose "
        "changed parameters feed resources it did not create (Condition false); delete the stack "
        "or deploy under other stream/table names"
    )


def _describe(cloudformation: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return stacks[0] if stacks else None


def _unchanged(
    cloudformation: Any, stack: Mapping[str, Any], body: str, wanted: Mapping[str, str]
) -> bool:
    deployed = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    if deployed != dict(wanted):
        return False
    current = cloudformation.get_template(StackName=stack["StackName"])["TemplateBody"]
    return isinstance(current, str) and current == body


def _wait(
    cloudformation: Any, name: str, timeout_s: float, *, accept_failed: bool = False
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        stack = _describe(cloudformation, name)
        if stack is None:
            raise StackDeployError(f"stack {name} disappeared while deploying")
        status = stack["StackStatus"]
        if status in _DONE or (accept_failed and not status.endswith("_IN_PROGRESS")):
            return stack
        if status in _FAILED:
            raise StackDeployError(
                f"stack {name} ended {status}: {_first_failure(cloudformation, name)}"
            )
        if time.monotonic() > deadline:
            raise StackDeployError(f"stack {name} still {status} after {timeout_s}s")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _wait_deleted(cloudformation: Any, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (stack := _describe(cloudformation, name)) is not None:
        if stack["StackStatus"] == "DELETE_COMPLETE":
            return
        if stack["StackStatus"] == "DELETE_FAILED" or time.monotonic() > deadline:
            raise StackDeployError(f"could not delete stack {name}: {stack['StackStatus']}")
        time.sleep(1)


def _first_failure(cloudformation: Any, name: str) -> str:
    try:
        events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return "no events"
    failures = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
    if not failures:
        return "no failed resource reported"
    first = failures[-1]  # events are newest first
    return f"{first.get('LogicalResourceId')}: {first.get('ResourceStatusReason', '')}"


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


# --- properties the endpoint's CloudFormation may have dropped ------------------------------------


def _properties(
    template: Mapping[str, Any], resource_type: str, resolver: Resolver
) -> dict[str, Any]:
    _, resource = find_resource(template, resource_type)
    resolved = resolver.resolve(resource.get("Properties", {}))
    return resolved if isinstance(resolved, dict) else {}


def _apply_table_settings(
    dynamodb: Any, table_name: str, template: Mapping[str, Any], resolver: Resolver
) -> None:
    props = _properties(template, "AWS::DynamoDB::Table", resolver)
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


def _apply_stream_settings(
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
