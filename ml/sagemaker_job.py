"""Training on SageMaker: ml's own entry point (``sagemaker_train.py``) as a scikit-learn
training job on the lake's S3 prefix, through the SageMaker Python SDK (the ``sagemaker`` extra).

What a job is (``job_estimator``): the SDK's ``SKLearn`` estimator, framework version
``SKLEARN_FRAMEWORK_VERSION``, the image the inference stack serves with, so the code a model was
trained with runs where it is served; one instance (the entry point is not distributed: a larger
lake wants a larger instance and volume, see docs/training.md); network isolation (the code
arrives as an input channel, the data as another, and the container calls nothing); no
Debugger or profiler (they would start extra processing jobs, billed). The ``train`` channel is
the lake's data prefix (S3Prefix, FullyReplicated, File mode). The job writes under the
artifacts bucket's ``model/training/<job>/``: ``source/sourcedir.tar.gz`` (the staged code),
``output/model.tar.gz`` (what ``tradestream deploy --model-uri`` serves), ``output/output.tar.gz``
(metrics, the model card, the lake's row counts).

The staged source (``stage_source``) is the entry point beside a copy of the ``ml`` modules it
imports (``SHIPPED_MODULES``, nothing else: no cache files, no serving stack, no core), so the
container imports the repository's feature and training code byte for byte.

The SDK's telemetry (a request to an AWS bucket carrying the account id, after every call) is
switched off unless the user's own SDK config file says otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.data import DATA_PREFIX
from tradestream import aws
from tradestream.deploy.options import Names
from tradestream.retry import error_code

ML_DIR = Path(__file__).resolve().parent
# The serving image's version (inference.yaml's ImageTag, 1.2-1-cpu-py3): ml/ keeps to its
# Python 3.9 and numpy 1.24, and a model trained there is served by the same libraries.
SKLEARN_FRAMEWORK_VERSION = "1.2-1"
ENTRY_POINT = "sagemaker_train.py"
# What the entry point imports, and nothing more (sagemaker_train.py's own imports, closed).
SHIPPED_MODULES = (
    "__init__.py",
    "card.py",
    "evaluate.py",
    "features.py",
    "inference.py",
    "labels.py",
    "lake_rows.py",
    "package.py",
    "train.py",
)
CHANNEL = "train"  # sagemaker_train.CHANNEL: SageMaker downloads it to SM_CHANNEL_TRAIN
TRAINING_PREFIX = "model/training"  # in the artifacts bucket, beside deploy's model/
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
METRICS = ("train_rows", "holdout_rows", "rmse_model", "rmse_no_change", "skill")
SDK_EXTRA_HINT = "pip install 'tradestream[sagemaker]'"
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_TELEMETRY_OPT_OUT = ("SageMaker", "PythonSDK", "Modules", "TelemetryOptOut")


class TrainingJobError(RuntimeError):
    """A job that cannot be started or did not complete; ``code`` says which, the message what
    to do."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class TrainingJobSettings(BaseSettings):
    """Where a job reads and writes, from the UPPER_CASE variables the other commands read; an
    unset bucket comes from the deployment's stack outputs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    bucket_name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    data_prefix: str = Field(default=DATA_PREFIX, pattern=r"^([^*?\[\]{}]+/)?$")
    artifacts_bucket: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    sagemaker_role_arn: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """One training job: what it reads, where it writes, on what, as whom."""

    lake_uri: str  # s3://<lake bucket>/trades/
    artifacts_bucket: str
    role_arn: str
    instance_type: str = DEFAULT_INSTANCE_TYPE
    volume_size_gb: int = 30  # File mode copies the whole prefix onto this volume first
    max_run_s: int = 4 * 3600  # SageMaker stops the job (and the bill) after this
    seed: int = 7
    horizon_s: float = 0.25
    base_job_name: str = "tradestream-train"

    def __post_init__(self) -> None:
        _check_role(self.role_arn)
        if not self.lake_uri.startswith("s3://") or not self.lake_uri.endswith("/"):
            raise TrainingJobError(f"lake {self.lake_uri!r} is not an s3:// prefix", "InvalidLake")

    @property
    def output_uri(self) -> str:
        return f"s3://{self.artifacts_bucket}/{TRAINING_PREFIX}"

    def hyperparameters(self) -> dict[str, Any]:
        # The names of sagemaker_train.py's arguments; source only labels the model's metadata.
        return {"seed": self.seed, "horizon": self.horizon_s, "source": self.lake_uri}


@dataclass(frozen=True)
class TrainingJob:
    name: str
    status: str  # InProgress | Completed | Failed | Stopped (DescribeTrainingJob's)
    model_uri: str  # the job's model.tar.gz: there once the job completed
    output_uri: str  # its output.tar.gz: metrics.json, model-card.md, lake-stats.json
    training_image: str
    failure_reason: str = ""

    def to_json(self) -> dict[str, str]:
        shown = {
            "job_name": self.name,
            "status": self.status,
            "model_uri": self.model_uri,
            "output_uri": self.output_uri,
            "training_image": self.training_image,
        }
        return {**shown, **({"failure_reason": self.failure_reason} if self.failure_reason else {})}


def job_spec(
    settings: TrainingJobSettings,
    *,
    prefix: str = "tradestream",
    role_arn: str | None = None,
    **options: Any,
) -> JobSpec:
    """The job for this deployment: BUCKET_NAME else the lake stack's bucket; ARTIFACTS_BUCKET
    else the artifacts stack's (where deploy uploads, and where --model-uri must point)."""
    role = role_arn or settings.sagemaker_role_arn
    if not role:
        raise TrainingJobError(
            "give --role or SAGEMAKER_ROLE_ARN: a role SageMaker assumes to read the lake and "
            "write the artifacts bucket (docs/training.md lists its policy)",
            "MissingRole",
        )
    _check_role(role)
    names = Names(prefix)
    with _aws_errors("reading the deployment's stacks"):
        lake = settings.bucket_name or _stack_output(names.stack("lake"), "BUCKET_NAME")
        artifacts = settings.artifacts_bucket or _stack_output(
            names.stack("artifacts"), "ARTIFACTS_BUCKET"
        )
    return JobSpec(f"s3://{lake}/{settings.data_prefix}", artifacts, role, **options)


def _check_role(role: str) -> None:
    if not _ROLE_ARN.match(role):
        raise TrainingJobError(
            f"{role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)", "InvalidRole"
        )


def _stack_output(stack: str, variable: str) -> str:
    # describe_stacks itself, not tradestream.cfn: its template reader needs the `local` extra.
    cloudformation = aws.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if error_code(exc) != "ValidationError":  # CloudFormation's "does not exist"
            raise
        stacks = []
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[:1] or [{}])[0].get("Outputs", [])}
    if "BucketName" not in outputs:
        raise TrainingJobError(
            f"no stack {stack} with a BucketName output at {cloudformation.meta.endpoint_url}: "
            f"set {variable}, or deploy first (tradestream deploy), or give the deployment's "
            "--prefix",
            "BucketUnknown",
        )
    return str(outputs["BucketName"])


def stage_source(into: Path) -> Path:
    """The job's source directory: the entry point and a copy of the ml modules it imports."""
    package = into / "ml"
    package.mkdir(parents=True)
    shutil.copyfile(ML_DIR / ENTRY_POINT, into / ENTRY_POINT)
    for name in SHIPPED_MODULES:
        shutil.copyfile(ML_DIR / name, package / name)
    return into


def job_estimator(spec: JobSpec, source_dir: Path, session: Any) -> Any:
    """The SDK's SKLearn estimator for ``spec`` (nothing is sent until ``fit``)."""
    from sagemaker.sklearn.estimator import SKLearn

    return SKLearn(
        entry_point=ENTRY_POINT,
        source_dir=str(source_dir),
        framework_version=SKLEARN_FRAMEWORK_VERSION,
        py_version="py3",
        role=spec.role_arn,
        instance_type=spec.instance_type,
        instance_count=1,
        volume_size=spec.volume_size_gb,
        max_run=spec.max_run_s,
        output_path=spec.output_uri,
        code_location=spec.output_uri,
        base_job_name=spec.base_job_name,
        hyperparameters=spec.hyperparameters(),
        metric_definitions=[
            {"Name": f"tradestream:{name}", "Regex": f"metric {name}=(\\S+)"} for name in METRICS
        ],
        enable_network_isolation=True,
        disable_profiler=True,
        debugger_hook_config=False,
        tags=[{"Key": "project", "Value": "tradestream"}],
        sagemaker_session=session,
    )


def job_inputs(spec: JobSpec) -> dict[str, Any]:
    from sagemaker.inputs import TrainingInput

    lake = TrainingInput(spec.lake_uri, distribution="FullyReplicated", s3_data_type="S3Prefix")
    return {CHANNEL: lake}


def sdk_session(spec: JobSpec) -> Any:
    """An SDK session over this project's clients (AWS_ENDPOINT_URL honoured), telemetry off."""
    from sagemaker.config import load_sagemaker_config
    from sagemaker.session import Session

    config = load_sagemaker_config()
    node = config
    for key in _TELEMETRY_OPT_OUT[:-1]:
        node = node.setdefault(key, {})
    node.setdefault(_TELEMETRY_OPT_OUT[-1], True)
    config.setdefault("SchemaVersion", "1.0")
    return Session(
        boto_session=boto3.session.Session(region_name=aws.region()),
        sagemaker_client=aws.client("sagemaker"),
        default_bucket=spec.artifacts_bucket,
        sagemaker_config=config,
    )


def start(spec: JobSpec, *, wait: bool = True) -> TrainingJob:
    """Stage the code, create the training job; with ``wait``, follow it (its log on stderr)
    until it ends. TrainingJobError when it could not start or did not complete."""
    require_sdk()
    from sagemaker.exceptions import UnexpectedStatusException

    with (
        _sdk_output_on_stderr(),
        tempfile.TemporaryDirectory() as scratch,
        _aws_errors("starting the training job"),
    ):
        estimator = job_estimator(spec, stage_source(Path(scratch) / "source"), sdk_session(spec))
        # A job that failed is described below, with SageMaker's reason.
        with suppress(UnexpectedStatusException):
            estimator.fit(job_inputs(spec), wait=wait, logs="All" if wait else "None")
        described = estimator.latest_training_job.describe()
    job = _described(described)
    if job.status in ("Failed", "Stopped"):
        raise TrainingJobError(
            f"training job {job.name} {job.status.lower()}: {job.failure_reason or 'no reason'}",
            f"Job{job.status}",
        )
    return job


def require_sdk() -> None:
    """TrainingJobError naming the extra when the SDK is not installed."""
    # The SDK warns on every import that v2 is on its way out; the choice is deliberate
    # (docs/training.md: the framework estimator is what this job is), so not every run.
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    try:
        # Imported with stdout on stderr: the SDK's config logger binds to sys.stdout as it is
        # at import, and stdout carries results only.
        with _sdk_output_on_stderr():
            import sagemaker  # noqa: F401
    except ModuleNotFoundError as exc:
        raise TrainingJobError(
            f"training on SageMaker needs the SageMaker Python SDK: {SDK_EXTRA_HINT}",
            "SdkMissing",
        ) from exc


def _described(described: Mapping[str, Any]) -> TrainingJob:
    name = str(described["TrainingJobName"])
    output = str(described["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
    model = described.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    return TrainingJob(
        name=name,
        status=str(described["TrainingJobStatus"]),
        model_uri=str(model or f"{output}/{name}/output/model.tar.gz"),
        output_uri=f"{output}/{name}/output/output.tar.gz",
        training_image=str(described["AlgorithmSpecification"].get("TrainingImage", "")),
        failure_reason=str(described.get("FailureReason", "")),
    )


@contextmanager
def _aws_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise TrainingJobError(f"{doing}: {exc}", error_code(exc)) from exc


@contextmanager
def _sdk_output_on_stderr() -> Iterator[None]:
    # The SDK prints the job's progress and log with print(): stdout carries results only.
    with redirect_stdout(sys.stderr):
        yield
