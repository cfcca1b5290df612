"""``deploy`` and ``destroy``: what `tradestream deploy` and `tradestream destroy` run.

deploy (targets ``aws`` and ``local``), in order: check the identity (STS) so missing credentials
fail before anything is created; deploy the artifacts bucket; build the Lambda zips and upload
them and the model artifact under content-addressed keys; deploy the other stacks in dependency
order, each from the outputs of those before it; return every output. Rerunning with nothing
changed changes nothing. ``localstack`` is its own, smaller plan (tradestream.deploy.localstack).

destroy deletes the stacks in reverse order, emptying the artifacts bucket first (CloudFormation
cannot delete a bucket with objects). The lake bucket is retained by its template, being the
system of record; ``delete_data=True`` empties and deletes it too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tradestream import aws
from tradestream.cfn.stacks import Stacks
from tradestream.cfn.template import TEMPLATE_DIR, StackTemplate, load_template
from tradestream.deploy.artifacts import delete_bucket, empty_bucket, upload
from tradestream.deploy.errors import TargetError, explained
from tradestream.deploy.localstack import deploy_localstack, destroy_localstack
from tradestream.deploy.network import network
from tradestream.deploy.options import DeployOptions, Names
from tradestream.deploy.plan import COMPONENTS, Component, DeployContext
from tradestream.deploy.targets import TARGETS, Target, endpoint
from tradestream.deploy.zips import build_lambda_zips, lambda_functions

log = logging.getLogger(__name__)

# Output -> the key `tradestream up` prints for the same thing, so scripts work with any mode.
FRIENDLY = {
    ("stream", "StreamName"): "stream",
    ("stream", "StreamArn"): "stream_arn",
    ("hotstore", "TableName"): "table",
    ("hotstore", "DeadLetterQueueUrl"): "dlq_url",
    ("lake", "BucketName"): "bucket",
    ("inference", "EndpointName"): "endpoint",
    ("ingest", "IngestUrl"): "ingest_url",
    ("ingest", "ApiKeysSecretArn"): "api_keys_secret",
    ("alarms", "AlarmTopicArn"): "alarm_topic",
}
# Below this many unreserved concurrent executions AWS refuses any reservation.
_MIN_UNRESERVED_CONCURRENCY = 100


def deploy(
    target: str,
    options: DeployOptions | None = None,
    *,
    region: str | None = None,
    timeout_s: float = 3600,
) -> dict[str, str]:
    """Deploy to ``target`` (aws | localstack | local) and return the stacks' outputs.

    The keys are ``<component>.<OutputKey>`` (e.g. ``ingest.IngestUrl``) plus the names
    ``tradestream up`` uses for the same things (``stream``, ``table``, ``bucket``, ...).
    Raises ``tradestream.deploy.errors.DeployError`` subclasses with messages for the user.
    """
    options = options or DeployOptions()
    with endpoint(target, region) as url, explained(target, url):
        if target == "localstack":
            return deploy_localstack(timeout_s)
        return _deploy(TARGETS[target], options, timeout_s)


def destroy(
    target: str,
    *,
    prefix: str = "tradestream",
    region: str | None = None,
    delete_data: bool = False,
    timeout_s: float = 3600,
) -> dict[str, str]:
    """Delete what ``deploy`` created on ``target``, newest stack first; report what happened to
    each stack and bucket (``deleted``, ``absent``, or ``kept`` and how to remove it)."""
    names = DeployOptions(prefix=prefix).names
    with endpoint(target, region, embedded=False) as url, explained(target, url):
        if target == "localstack":
            return destroy_localstack(delete_data=delete_data, timeout_s=timeout_s)
        return _destroy(TARGETS[target], names, delete_data, timeout_s)


# --- deploy ---------------------------------------------------------------------------------------


def _deploy(target: Target, options: DeployOptions, timeout_s: float) -> dict[str, str]:
    identity = aws.client("sts").get_caller_identity()
    ctx = DeployContext(
        options=options,
        account=str(identity["Account"]),
        region=aws.region(),
        hotstore_flavour=target.hotstore_flavour,
        lake_flavour=target.lake_flavour,
        functions=lambda_functions(),
    )
    log.info(
        "deploying %s to account %s, %s, as %s",
        options.prefix,
        ctx.account,
        ctx.region,
        identity["Arn"],
    )
    stacks = Stacks(
        aws.client("cloudformation"),
        change_sets=target.change_sets,
        timeout_s=timeout_s,
        poll_s=5 if target.name == "aws" else 0.2,
    )
    for component in COMPONENTS:
        if not component.wanted(options):
            log.info("skipping %s (no image given)", component.name)
            continue
        _prepare(component, ctx)
        outcome = stacks.deploy(
            options.names.stack(component.name), _template(component), component.parameters(ctx)
        )
        log.info("stack %s: %s", outcome.name, outcome.action)
        ctx.outputs[component.name] = outcome.outputs
        if component.name == "artifacts":
            _upload_artifacts(ctx)
    return _report(target, ctx)


def _prepare(component: Component, ctx: DeployContext) -> None:
    """Look up what a stack needs from the account just before it is deployed."""
    if component.name == "hotstore":
        ctx.reserved_concurrency = _reserved_concurrency(ctx)
    if component.name in ("producer", "ingest") and ctx.network is None:
        ctx.network = network(aws.client("ec2"), ctx.options)


def _template(component: Component) -> StackTemplate:
    return StackTemplate.load(TEMPLATE_DIR / component.template)


def _upload_artifacts(ctx: DeployContext) -> None:
    ctx.artifacts_bucket = ctx.output("artifacts", "BucketName")
    s3 = aws.client("s3")
    zips = ctx.options.zips or build_lambda_zips(ctx.options.build_dir / "zips")
    for function in ctx.functions:
        ctx.code_keys[function.name] = upload(
            s3, ctx.artifacts_bucket, "lambdas", zips[function.name]
        )
    if ctx.options.model_uri:
        ctx.model_key = _uploaded_model_key(s3, ctx.artifacts_bucket, ctx.options.model_uri)
    else:
        ctx.model_key = upload(s3, ctx.artifacts_bucket, "model", _model_artifact(ctx.options))


def _uploaded_model_key(s3: Any, bucket: str, uri: str) -> str:
    """The key of a model.tar.gz already in the artifacts bucket (a training job's output).
    The inference stack serves models from that bucket only, so the endpoint's role reads there."""
    named, _, key = uri.removeprefix("s3://").partition("/")
    if named != bucket:
        raise TargetError(
            f"{uri} is not in the artifacts bucket s3://{bucket}/: train with `tradestream model "
            "train --on sagemaker` (it writes there), or download it and give --model"
        )
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        raise TargetError(
            f"{uri} cannot be read ({code}): has its training job completed?"
        ) from exc
    return key


def _model_artifact(options: DeployOptions) -> Path:
    if options.model_artifact is not None:
        return options.model_artifact
    if options.default_model is None:
        raise TargetError("no model artifact: give --model PATH/model.tar.gz")
    log.info("no model artifact given: using the reproducible default model")
    return options.default_model()


def _reserved_concurrency(ctx: DeployContext) -> str | None:
    """Keep the templates' reservations when the account can afford them, else none (-1).

    New accounts often have a concurrency quota of 10, and Lambda refuses any reservation that
    leaves fewer than 100 unreserved: the deploy would fail on the function."""
    if ctx.options.reserved_concurrency is not None:
        return str(ctx.options.reserved_concurrency)
    try:
        limit = aws.client("lambda").get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    except (ClientError, BotoCoreError, KeyError):
        return None  # an endpoint without the API: the templates' defaults
    wanted = sum(_reservation_default(f.template) for f in ctx.functions)
    if int(limit) - wanted >= _MIN_UNRESERVED_CONCURRENCY:
        return None
    log.warning(
        "the account's Lambda concurrency quota is %s: deploying without reserved concurrency "
        "(ask for a quota increase to reserve it)",
        limit,
    )
    return "-1"


def _reservation_default(template: str) -> int:
    spec = load_template(TEMPLATE_DIR / template).get("Parameters", {}).get("ReservedConcurrency")
    return max(int(spec.get("Default", 0)), 0) if spec else 0


def _report(target: Target, ctx: DeployContext) -> dict[str, str]:
    report = {
        "target": target.name,
        "account": ctx.account,
        "region": ctx.region,
        "artifacts_bucket": ctx.artifacts_bucket,
    }
    for component, outputs in ctx.outputs.items():
        for key, value in outputs.items():
            report[f"{component}.{key}"] = value
            if (component, key) in FRIENDLY:
                report[FRIENDLY[component, key]] = value
    return report


# --- destroy --------------------------------------------------------------------------------------


def _destroy(target: Target, names: Names, delete_data: bool, timeout_s: float) -> dict[str, str]:
    stacks = Stacks(
        aws.client("cloudformation"),
        change_sets=target.change_sets,
        timeout_s=timeout_s,
        poll_s=5 if target.name == "aws" else 0.2,
    )
    s3 = aws.client("s3")
    account = str(aws.client("sts").get_caller_identity()["Account"])
    report: dict[str, str] = {}
    # Also when the lake stack is gone already (a destroy without delete_data ran before).
    lake_bucket = names.lake_bucket(account, aws.region())
    for component in reversed(COMPONENTS):
        name = names.stack(component.name)
        outputs = stacks.outputs(name)
        if outputs is None:
            report[name] = "absent"
            continue
        if component.name == "artifacts":
            empty_bucket(s3, outputs["BucketName"])
        if component.name == "lake":
            lake_bucket = outputs.get("BucketName", lake_bucket)
        stacks.delete(name)
        report[name] = "deleted"
    report[f"s3://{lake_bucket}"] = _lake_bucket(s3, lake_bucket, delete_data)
    return report


def _lake_bucket(s3: Any, bucket: str, delete_data: bool) -> str:
    if delete_data:
        return "deleted" if delete_bucket(s3, bucket) else "absent"
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return "absent"
    return "kept: it is the system of record (--delete-data deletes it)"
