"""The `tradestream` command: run the embedded stack, the demo and Lambda handlers locally; deploy
and destroy (``tradestream.cli.deploy``).

stdout carries results only (the ready line, the summary, a handler's response); logs and
progress go to stderr, so `tradestream up | head -1` or `--json | tail -1` are scriptable.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from tradestream.cli.deploy import deploy_command, destroy_command
from tradestream.cli.dlq import dlq_command
from tradestream.cli.lake import lake_command
from tradestream.cli.plan import plan_command
from tradestream.cli.replay import replay_command
from tradestream.trade import dumps

# The demo's default pace: sustained on a 2-core laptop with an end-to-end p99 of about 1.5 s;
# at 2,000/s the p99 passes 2 s and grows with the run (docs/benchmarks.md).
DEMO_RATE = 1000.0

# Each command's extra (pyproject.toml); every other command runs the embedded stack: `local`.
COMMAND_EXTRAS = {
    "ingest": "ingest",
    "model": "ml",
    "dashboard": "dashboard",
    "lake": "lake",
    "replay": "producer",
}
OWN_PACKAGES = {"tradestream", "producer", "ingest_api", "lambdas", "ml", "dashboard"}


class ExtrasGroup(click.Group):
    """Commands import what they need when run, so ``--help`` works with the core alone; a
    command whose extra is not installed says which one to install instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] in OWN_PACKAGES:
                raise  # a broken installation, not a missing extra
            command = ctx.invoked_subcommand or ""
            extra = COMMAND_EXTRAS.get(command, "local")
            raise click.ClickException(
                f"`tradestream {command}` needs the {extra} extra ({exc.name} is not installed): "
                f"pip install 'tradestream[{extra}]'"
            ) from exc


@click.group(cls=ExtrasGroup)
@click.version_option(package_name="tradestream")
def main() -> None:
    """tradestream: Kinesis + Lambda + Firehose + SageMaker + DynamoDB, runnable on a laptop."""


@main.command()
@click.option("--trades", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=DEMO_RATE,
    show_default=True,
    help="Synthetic trades per second. The default is a rate a 2-core laptop sustains, so the "
    "latency shown is what a user of the pipeline sees; 0 = flat out (the stream takes trades "
    "faster than the hot path drains them, so the latency shown is the backlog's).",
)
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object on stdout.")
@click.option(
    "--dashboard/--no-dashboard",
    default=True,
    show_default=True,
    help="Serve the live dashboard while the demo runs (its URL is printed on stderr).",
)
def demo(trades: int, rate: float, timeout: float, as_json: bool, dashboard: bool) -> None:
    """Run the embedded stack with the synthetic producer until TRADES trades have landed."""
    from tradestream.cli.demo import run_demo

    # Per-batch log lines would drown the progress line; LOG_LEVEL=INFO brings them back.
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    result = run_demo(trades, rate=rate, timeout=timeout, dashboard=dashboard)
    if as_json:
        click.echo(dumps(result.to_json()))
    else:
        from tradestream.cli.progress import print_summary

        print_summary(result.to_json())
    if not result.drained:
        sys.exit(1)


@main.command()
@click.option(
    "--source",
    default="synthetic",
    show_default=True,
    help="synthetic | finnhub | replay:FILE | none",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the ready line to this file (removed on stop): a container health check.",
)
@click.option(
    "--dashboard/--no-dashboard",
    default=True,
    show_default=True,
    help="Serve the live dashboard (DASHBOARD_HOST:DASHBOARD_PORT, 127.0.0.1:8050).",
)
def up(source: str, ready_file: Path | None, dashboard: bool) -> None:
    """Start the embedded stack and keep it running until interrupted (Ctrl-C / SIGTERM)."""
    from tradestream.cli.up import (
        StageCounters,
        run_source,
        start_dashboard,
        start_ingest,
        start_model_server,
        start_runtime_metrics,
    )
    from tradestream.local.runtime import embedded_stack

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    counters = StageCounters()
    with (
        embedded_stack(model_server=start_model_server) as stack,
        start_runtime_metrics(stack),
        start_ingest(stack),
        start_dashboard(stack, counters, enabled=dashboard),
    ):
        producer = run_source(source, stack, stop, counters.on_producer_progress)
        line = dumps(stack.ready_line())
        click.echo(line)
        sys.stdout.flush()
        if ready_file is not None:
            ready_file.write_text(line + "\n")
        try:
            while not stop.wait(0.5):  # a timed wait lets the signal handlers run promptly
                pass
        finally:
            if ready_file is not None:
                ready_file.unlink(missing_ok=True)  # unhealthy from the moment it stops
        if producer is not None:
            producer.join(timeout=30)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
def ingest(host: str, port: int) -> None:
    """Serve the HTTP ingest API (POST /v1/trades -> Kinesis) under uvicorn until SIGTERM.

    Configured by the environment: STREAM_NAME, INGEST_API_KEYS or INGEST_API_KEYS_SECRET, the
    standard AWS variables, WORKERS, and the rest of ingest_api.settings.IngestSettings.
    """
    from ingest_api import serve

    serve(host, port)


@main.group()
def model() -> None:
    """Train, package and serve the model behind the inference lake."""


LOCAL_TRAINING_ONLY = ("out", "trades", "card")
SAGEMAKER_TRAINING_ONLY = ("role", "instance_type", "volume_size", "max_run", "prefix", "wait")


@model.command("train")
@click.option(
    "--on",
    "where",
    type=click.Choice(["local", "sagemaker"]),
    default="local",
    show_default=True,
    help="local: in this process. sagemaker: a SageMaker training job on the lake's S3 prefix "
    "(the sagemaker extra; docs/training.md), model.tar.gz in the artifacts bucket.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("build/model"), show_default=True
)
@click.option("--trades", type=click.IntRange(min=1000), default=200_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--horizon", type=click.FloatRange(min=0.05), default=0.25, show_default=True)
@click.option(
    "--bucket",
    help="The lake: local retrains on it instead of synthetic data; sagemaker trains on it "
    "(default: BUCKET_NAME, else the deployment's lake stack).",
)
@click.option("--card", type=click.Path(path_type=Path), help="Also write the model card here.")
@click.option("--role", help="sagemaker: the job's IAM role. Default: SAGEMAKER_ROLE_ARN.")
@click.option(
    "--instance-type",
    default="ml.m5.large",
    show_default=True,
    help="sagemaker: the one instance the job trains on.",
)
@click.option(
    "--volume-size",
    type=click.IntRange(1, 16_384),
    default=30,
    show_default=True,
    help="sagemaker: GB of the instance's volume, which holds the whole lake prefix.",
)
@click.option(
    "--max-run",
    type=click.IntRange(1, 28 * 24 * 60),
    default=240,
    show_default=True,
    help="sagemaker: minutes after which SageMaker stops the job (and its bill).",
)
@click.option(
    "--prefix",
    default="tradestream",
    show_default=True,
    help="sagemaker: the deployment whose stacks name the lake and artifacts buckets (unless "
    "BUCKET_NAME / ARTIFACTS_BUCKET say).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="sagemaker: follow the job to its end (its log on stderr), or print it once created.",
)
@click.pass_context
def model_train(
    ctx: click.Context,
    /,
    where: str,
    out: Path,
    trades: int,
    seed: int,
    horizon: float,
    bucket: str | None,
    card: Path | None,
    **sagemaker: Any,
) -> None:
    """Train reproducibly, evaluate on a time-based holdout, print the metrics as JSON; or, with
    --on sagemaker, run that training as a SageMaker job and print the job and its model's URI."""
    on_sagemaker = where == "sagemaker"
    _refuse_options(ctx, LOCAL_TRAINING_ONLY if on_sagemaker else SAGEMAKER_TRAINING_ONLY, where)
    if on_sagemaker:
        _train_on_sagemaker(seed=seed, horizon=horizon, bucket=bucket, **sagemaker)
        return
    from ml.data import lake_history
    from ml.train import model_card, train

    history = lake_history(bucket) if bucket else None
    source = f"s3://{bucket}/trades/" if bucket else None
    result = train(
        out, trades=history, n_trades=trades, seed=seed, horizon_s=horizon, source=source
    )
    if card:
        card.write_text(model_card(result))
    click.echo(dumps({"model_version": result.model_version, **result.metrics}))


def _refuse_options(ctx: click.Context, names: tuple[str, ...], where: str) -> None:
    given = [
        f"--{name.replace('_', '-')}"
        for name in names
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        other = "sagemaker" if where == "local" else "local"
        raise click.UsageError(f"{', '.join(given)}: only with --on {other}")


def _train_on_sagemaker(
    *,
    seed: int,
    horizon: float,
    bucket: str | None,
    role: str | None,
    instance_type: str,
    volume_size: int,
    max_run: int,
    prefix: str,
    wait: bool,
) -> None:
    from pydantic import ValidationError

    from ml.sagemaker_job import (
        TrainingJobError,
        TrainingJobSettings,
        job_spec,
        require_sdk,
        start,
    )

    try:
        settings = TrainingJobSettings(**({"bucket_name": bucket} if bucket else {}))
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        require_sdk()
        spec = job_spec(
            settings,
            prefix=prefix,
            role_arn=role,
            instance_type=instance_type,
            volume_size_gb=volume_size,
            max_run_s=max_run * 60,
            seed=seed,
            horizon_s=horizon,
            base_job_name=f"{prefix}-train",
        )
        job = start(spec, wait=wait)
    except TrainingJobError as exc:
        raise click.ClickException(f"{exc} [{exc.code}]") from exc
    deploy = f"tradestream deploy --target aws --prefix {prefix} --model-uri {job.model_uri}"
    click.echo(dumps({**job.to_json(), "lake_uri": spec.lake_uri, "deploy": deploy}))


@model.command("package")
@click.option(
    "--model-dir", type=click.Path(exists=True, path_type=Path), default=Path("build/model")
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/model.tar.gz"))
def model_package(model_dir: Path, out: Path) -> None:
    """Build model.tar.gz in the SageMaker scikit-learn layout."""
    from ml.package import package

    click.echo(str(package(model_dir, out)))


@model.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--model-dir",
    type=click.Path(exists=True, path_type=Path),
    help="An extracted package or a model.tar.gz; default: the reproducible default model.",
)
def model_serve(host: str, port: int, model_dir: Path | None) -> None:
    """Serve the model with the SageMaker container and runtime API contracts."""
    from ml.serve import serve

    serve(model_dir, host, port)


@main.group()
def local() -> None:
    """Run pieces of the cloud deployment locally."""


@local.command()
@click.argument("function", type=click.Choice(["hotstore", "enrich"]))
@click.option("--event", "event_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def invoke(function: str, event_file: Path | None) -> None:
    """Invoke a Lambda handler once with the event in FILE (stdin if omitted), like `sam local
    invoke`, against the embedded stack; the handler's JSON response is the last stdout line."""
    from tradestream.cli.up import start_model_server
    from tradestream.local.runtime import embedded_stack

    raw = event_file.read_text() if event_file else sys.stdin.read()
    event: dict[str, Any] = json.loads(raw)
    with embedded_stack(
        run_mapping=False, with_lake=function == "enrich", model_server=start_model_server
    ) as stack:
        if function == "enrich":
            response = stack.enrich_handler()(event, stack.enrich_context())
        else:
            response = stack.hotstore_handler()(event, stack.hotstore_context())
    click.echo(dumps(response))


@local.command()
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the ready line here once running, remove it on stop (the image's health check).",
)
def runtime(ready_file: Path | None) -> None:
    """Run the AWS glue locally against the endpoint AWS_ENDPOINT_URL names (LocalStack in
    compose): deploy-or-reuse the Flavour=local stacks (as `tradestream deploy --target
    localstack` does), then run the Kinesis event source mapping and Firehose emulations until
    SIGTERM. Prints the ready line like `up`, with no producer."""

    if not os.environ.get("AWS_ENDPOINT_URL"):
        raise click.UsageError(
            "set AWS_ENDPOINT_URL (e.g. LocalStack); `tradestream up` embeds moto"
        )
    # compose serves the dashboard as a service of its own (`tradestream dashboard`), which
    # scrapes this runtime's metrics.
    up.callback(source="none", ready_file=ready_file, dashboard=False)  # type: ignore[misc]


@main.command()
@click.option("--host", envvar="DASHBOARD_HOST", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    envvar="DASHBOARD_PORT",
    type=click.IntRange(0, 65535),
    default=8050,
    show_default=True,
)
def dashboard(host: str, port: int) -> None:
    """Serve the live dashboard against whatever endpoint the environment names
    (AWS_ENDPOINT_URL: LocalStack, moto; unset: AWS): STREAM_NAME, TABLE_NAME, BUCKET_NAME,
    DLQ_URL or DLQ_NAME, and the components' PRODUCER_/INGEST_/RUNTIME_METRICS_URL."""
    from dashboard import DashboardSettings
    from dashboard.app import serve

    serve(DashboardSettings(dashboard_host=host, dashboard_port=port))


main.add_command(deploy_command)
main.add_command(destroy_command)
main.add_command(lake_command)
main.add_command(replay_command)
main.add_command(dlq_command)
main.add_command(plan_command)


if __name__ == "__main__":
    main()
