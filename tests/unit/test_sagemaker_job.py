"""The SageMaker training job's definition, without AWS and without the SDK: what is shipped to
the container and why that is enough, where a job reads and writes and as whom, the entry point's
hyperparameters, and the commands' refusals. The job the SDK sends is tested against moto in
tests/functional/test_sagemaker_training.py."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ml.sagemaker_train as entry
from ml.sagemaker_job import (
    CHANNEL,
    ENTRY_POINT,
    METRICS,
    ML_DIR,
    SHIPPED_MODULES,
    SKLEARN_FRAMEWORK_VERSION,
    JobSpec,
    TrainingJobError,
    TrainingJobSettings,
    _described,
    job_spec,
    stage_source,
)
from tradestream.cfn.template import TEMPLATE_DIR, load_template
from tradestream.cli.deploy import deploy_command
from tradestream.cli.main import main
from tradestream.deploy.errors import TargetError
from tradestream.deploy.options import DeployOptions

ROLE = "arn:aws:iam::123456789012:role/tradestream-training"
# What the SageMaker scikit-learn image has besides the standard library (pyarrow: Parquet only).
IMAGE_LIBRARIES = {"numpy", "joblib", "sklearn", "pyarrow"}


def module_level_imports(path: Path) -> Iterator[str]:
    """Every module an import of ``path`` runs: module level, ``try`` and ``if`` blocks included,
    function bodies not (they run only when called); ``from ml import x`` yields ``ml.x``."""
    pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))


def imports_closure(start: Path) -> tuple[set[str], set[str]]:
    """(ml module files an import of ``start`` loads, top-level names of everything else)."""
    reached: set[str] = {"__init__.py"}
    others: set[str] = set()
    pending = [start]
    while pending:
        for module in module_level_imports(pending.pop()):
            top, *parts = module.split(".")
            if top != "ml":
                others.add(top)
                continue
            target = ML_DIR.joinpath(*parts).with_suffix(".py") if parts else ML_DIR / "__init__.py"
            if target.is_file() and target.name not in reached:
                reached.add(target.name)
                pending.append(target)
    return reached, others


def test_what_is_shipped_is_exactly_what_the_entry_point_imports_and_runs_in_the_image() -> None:
    # GIVEN the entry point WHEN what importing it imports is followed through ml (train.py's
    # synthetic data, which needs core, is imported only when no trades are given: never here,
    # as the container test in tests/functional/test_sagemaker_training.py shows)
    modules, others = imports_closure(ML_DIR / ENTRY_POINT)
    # THEN the staged source ships exactly those modules
    assert modules == set(SHIPPED_MODULES)
    # AND nothing of them needs core or a library the image lacks
    outside = others - set(sys.stdlib_module_names) - {"__future__"}
    assert outside <= IMAGE_LIBRARIES, outside


def test_the_staged_source_is_the_entry_point_beside_a_byte_copy_of_ml(tmp_path: Path) -> None:
    # GIVEN / WHEN the job's source directory is staged
    staged = stage_source(tmp_path / "source")
    # THEN it holds the entry point at its top and the shipped modules under ml/, byte for byte,
    # and nothing else (no caches, no serving stack, no data code that needs core)
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    assert files == {ENTRY_POINT, *(f"ml/{name}" for name in SHIPPED_MODULES)}
    for name in SHIPPED_MODULES:
        assert (staged / "ml" / name).read_bytes() == (ML_DIR / name).read_bytes()


def test_the_job_and_its_entry_point_agree_on_channel_metrics_and_image() -> None:
    # GIVEN the job definition and the entry point
    # THEN the channel the job defines is the one the entry point reads
    assert entry.CHANNEL == CHANNEL
    # AND the metric definitions look for the lines the entry point prints
    assert entry.REPORTED_METRICS == METRICS
    # AND the job trains in the image the inference stack serves with
    tag = load_template(TEMPLATE_DIR / "inference.yaml")["Parameters"]["ImageTag"]["Default"]
    assert tag == f"{SKLEARN_FRAMEWORK_VERSION}-cpu-py3"


def test_hyperparameters_come_from_the_arguments_over_sm_hps_over_the_defaults() -> None:
    # GIVEN SM_HPS and arguments that overlap, plus one the toolkit might add
    environ = {"SM_HPS": json.dumps({"seed": 3, "horizon": 0.5, "source": "s3://l/trades/"})}
    # WHEN the entry point reads them
    args = entry._arguments(["--seed", "9", "--sagemaker-extra", "x"], environ)
    # THEN the arguments win, SM_HPS fills the rest, and the unknown one is ignored
    assert (args.seed, args.horizon, args.source) == (9, 0.5, "s3://l/trades/")
    # AND with neither, ml's defaults apply
    defaults = entry._arguments([], {})
    assert (defaults.seed, defaults.horizon, defaults.source) == (7, 0.25, "")


def test_the_spec_reads_the_lake_prefix_and_writes_under_the_artifacts_training_prefix() -> None:
    # GIVEN both buckets and the role from the settings (no stack is asked: no AWS here)
    settings = TrainingJobSettings(
        bucket_name="lake-b", artifacts_bucket="art-b", sagemaker_role_arn=ROLE
    )
    # WHEN the job is specified
    spec = job_spec(settings, seed=3, horizon_s=0.5)
    # THEN it reads the lake's data prefix, writes under the artifacts bucket, as that role
    assert spec.lake_uri == "s3://lake-b/trades/"
    assert spec.output_uri == "s3://art-b/model/training"
    assert spec.role_arn == ROLE
    assert spec.hyperparameters() == {"seed": 3, "horizon": 0.5, "source": "s3://lake-b/trades/"}


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the variables the other commands read, and ARTIFACTS_BUCKET / SAGEMAKER_ROLE_ARN
    monkeypatch.setenv("BUCKET_NAME", "lake-env")
    monkeypatch.setenv("DATA_PREFIX", "trades/symbol=AAPL/")
    monkeypatch.setenv("ARTIFACTS_BUCKET", "art-env")
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE)
    # WHEN / THEN the spec is theirs
    spec = job_spec(TrainingJobSettings())
    assert (spec.lake_uri, spec.artifacts_bucket, spec.role_arn) == (
        "s3://lake-env/trades/symbol=AAPL/",
        "art-env",
        ROLE,
    )


@pytest.mark.parametrize(
    ("role", "code"),
    [(None, "MissingRole"), ("trainer", "InvalidRole"), ("arn:aws:iam::1:role/x", "InvalidRole")],
)
def test_a_job_needs_a_role_arn_before_anything_is_looked_up(role: str | None, code: str) -> None:
    # GIVEN no role, or something that is not a role ARN, and buckets nobody could find
    settings = TrainingJobSettings()
    # WHEN the job is specified THEN it is refused with the code, before any stack lookup
    with pytest.raises(TrainingJobError) as refused:
        job_spec(settings, role_arn=role, prefix="nowhere")
    assert refused.value.code == code


def test_a_lake_that_is_not_an_s3_prefix_is_refused() -> None:
    with pytest.raises(TrainingJobError, match="not an s3:// prefix") as refused:
        JobSpec("s3://lake/trades", "art", ROLE)
    assert refused.value.code == "InvalidLake"


def test_a_failed_job_reports_sagemakers_reason() -> None:
    # GIVEN DescribeTrainingJob's answer for a job whose entry point failed
    described: dict[str, Any] = {
        "TrainingJobName": "tradestream-train-1",
        "TrainingJobStatus": "Failed",
        "FailureReason": "AlgorithmError: TrainingDataError: 12 training and 3 holdout rows",
        "OutputDataConfig": {"S3OutputPath": "s3://art/model/training"},
        "AlgorithmSpecification": {"TrainingImage": "img"},
    }
    # WHEN it is read THEN the model URI is where it would have been, and the reason is kept
    job = _described(described)
    assert job.model_uri == "s3://art/model/training/tradestream-train-1/output/model.tar.gz"
    assert job.to_json()["failure_reason"].startswith("AlgorithmError: TrainingDataError")


# --- the commands ---------------------------------------------------------------------------


def test_train_on_sagemaker_without_the_sdk_names_the_extra() -> None:
    if importlib.util.find_spec("sagemaker") is not None:
        pytest.skip("the SDK is installed here; the dev venv is meant to be without it")
    # GIVEN the dev venv, which has no SageMaker SDK WHEN a job is asked for
    result = CliRunner().invoke(main, ["model", "train", "--on", "sagemaker", "--role", ROLE])
    # THEN it says which extra to install, without a traceback
    assert result.exit_code == 1
    assert "pip install 'tradestream[sagemaker]'" in result.output
    assert "[SdkMissing]" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (
            ["--on", "sagemaker", "--out", "x", "--card", "c.md"],
            "--out, --card: only with --on local",
        ),
        (["--role", ROLE], "--role: only with --on sagemaker"),
        (["--no-wait", "--instance-type", "ml.c5.xlarge"], "--instance-type, --wait"),
    ],
)
def test_options_of_the_other_place_are_refused(args: list[str], refused: str) -> None:
    # GIVEN an option that belongs to the other --on WHEN given THEN it is a usage error
    result = CliRunner().invoke(main, ["model", "train", *args])
    assert result.exit_code == 2
    assert refused in result.output


def test_deploy_passes_the_model_uri_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN deploy itself replaced by a recorder
    seen: list[DeployOptions] = []
    monkeypatch.setattr(
        "tradestream.deploy.api.deploy", lambda _target, options, **_: seen.append(options) or {}
    )
    uri = "s3://art-b/model/training/tradestream-train-1/output/model.tar.gz"
    # WHEN deployed with --model-uri
    result = CliRunner().invoke(deploy_command, ["--target", "local", "--model-uri", uri])
    # THEN the options carry it, and no local artifact
    assert result.exit_code == 0, result.output
    assert (seen[0].model_uri, seen[0].model_artifact) == (uri, None)


def test_a_model_uri_must_be_an_s3_tar_gz_and_not_beside_a_model_file(tmp_path: Path) -> None:
    local = tmp_path / "model.tar.gz"
    local.write_bytes(b"x")
    with pytest.raises(TargetError, match=r"not s3://BUCKET/KEY\.tar\.gz"):
        DeployOptions(model_uri="https://art/model.tar.gz")
    with pytest.raises(TargetError, match="not both"):
        DeployOptions(model_uri="s3://art-b/m/model.tar.gz", model_artifact=local)
