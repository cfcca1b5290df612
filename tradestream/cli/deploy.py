"""The `tradestream deploy` and `tradestream destroy` commands, for ``tradestream.cli.main`` to add:

    from tradestream.cli.deploy import deploy_command, destroy_command
    main.add_command(deploy_command)
    main.add_command(destroy_command)

stdout carries only the result (one JSON object); progress goes to stderr. A DeployError or
StackFailedError ends the command with its message and exit status 1, not a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from tradestream.cfn.errors import StackFailedError
from tradestream.deploy.errors import DeployError
from tradestream.deploy.options import INFERENCE_MODES, STREAM_MODES, DeployOptions
from tradestream.deploy.targets import TARGET_NAMES

_TARGET_HELP = (
    "aws: your AWS account. localstack: the stacks the compose runtime needs, in LocalStack "
    "(AWS_ENDPOINT_URL, default http://localhost:4566). local: every stack moto can create, in "
    "the moto server AWS_ENDPOINT_URL names, else an embedded one (a rehearsal)."
)


def _subnets(_: click.Context, __: click.Parameter, value: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())


@contextmanager
def _reported() -> Iterator[None]:
    # Progress from this project only, on stderr; the SDK's own INFO lines would drown it.
    logger = logging.getLogger("tradestream")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    except (DeployError, StackFailedError) as exc:
        raise click.ClickException(str(exc)) from exc


def _target_option() -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        "--target", type=click.Choice(TARGET_NAMES), required=True, help=_TARGET_HELP
    )


@click.command("deploy")
@_target_option()
@click.option(
    "--prefix", default="tradestream", show_default=True, help="Names every stack and resource."
)
@click.option("--region", help="Default: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1.")
@click.option(
    "--stream-mode", type=click.Choice(STREAM_MODES), default="PROVISIONED", show_default=True
)
@click.option("--shards", type=click.IntRange(1, 500), default=2, show_default=True)
@click.option(
    "--inference", type=click.Choice(INFERENCE_MODES), default="serverless", show_default=True
)
@click.option(
    "--model",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="model.tar.gz (`tradestream model package`); default: the reproducible default model.",
)
@click.option(
    "--model-uri",
    help="Or s3://ARTIFACTS_BUCKET/...model.tar.gz, served as it is: what `tradestream model "
    "train --on sagemaker` prints.",
)
@click.option("--producer-image", help="Producer image URI (ECR); without it, no producer stack.")
@click.option("--ingest-image", help="Ingest image URI (ECR); without it, no ingest stack.")
@click.option("--finnhub-secret-arn", default="", help="Without it the producer is synthetic.")
@click.option("--synthetic-rate", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--api-keys-secret-arn", default="", help="Default: a generated key secret.")
@click.option("--certificate-arn", default="", help="ACM certificate: HTTPS on the load balancer.")
@click.option("--vpc-id", help="Default: the region's default VPC.")
@click.option("--public-subnets", callback=_subnets, help="Comma-separated, two AZs at least.")
@click.option("--task-subnets", callback=_subnets, help="Private subnets with NAT for the tasks.")
@click.option("--alarm-email", default="", help="Subscribed to the alarm topic.")
def deploy_command(
    target: str,
    prefix: str,
    region: str | None,
    stream_mode: str,
    shards: int,
    inference: str,
    model: Path | None,
    model_uri: str | None,
    producer_image: str | None,
    ingest_image: str | None,
    finnhub_secret_arn: str,
    synthetic_rate: int,
    api_keys_secret_arn: str,
    certificate_arn: str,
    vpc_id: str | None,
    public_subnets: tuple[str, ...],
    task_subnets: tuple[str, ...],
    alarm_email: str,
) -> None:
    """Build and upload the artifacts, deploy the stacks with change sets, print the outputs."""
    from tradestream.deploy.api import deploy

    with _reported():
        options = DeployOptions(
            prefix=prefix,
            stream_mode=stream_mode,
            shard_count=shards,
            inference_mode=inference,
            model_artifact=model,
            model_uri=model_uri,
            default_model=_default_model,
            producer_image=producer_image,
            ingest_image=ingest_image,
            finnhub_secret_arn=finnhub_secret_arn,
            synthetic_rate=synthetic_rate,
            api_keys_secret_arn=api_keys_secret_arn,
            certificate_arn=certificate_arn,
            vpc_id=vpc_id,
            public_subnets=public_subnets,
            task_subnets=task_subnets,
            alarm_email=alarm_email,
        )
        outputs = deploy(target, options, region=region)
    click.echo(json.dumps(outputs, sort_keys=True))


def _default_model() -> Path:
    # The CLI wires deployables in: ml builds (or reuses from its cache) the default model.
    from ml.default_model import default_model_dir

    return default_model_dir() / "model.tar.gz"


@click.command("destroy")
@_target_option()
@click.option("--prefix", default="tradestream", show_default=True)
@click.option("--region")
@click.option("--delete-data", is_flag=True, help="Also empty and delete the lake bucket.")
def destroy_command(target: str, prefix: str, region: str | None, delete_data: bool) -> None:
    """Delete every stack `tradestream deploy` created, newest first, and its buckets."""
    from tradestream.deploy.api import destroy

    with _reported():
        report = destroy(target, prefix=prefix, region=region, delete_data=delete_data)
    click.echo(json.dumps(report, sort_keys=True))
