"""Training on SageMaker, as far as it can be tested without AWS.

- The job the SDK creates: `tradestream model train --on sagemaker` run as a command in the
  ``sagemaker`` extra's own venv (tests/support/venvs.py, built once and cached, ~30 s; skipped,
  saying why, where it cannot be built, e.g. offline), against the session's moto server over
  HTTP. moto's CreateTrainingJob stores the request and calls the job Completed at once, running
  nothing; DescribeTrainingJob then shows what the SDK sent, and S3 holds the code it staged.
- The job's entry point, run as the container runs it, on a directory shaped like /opt/ml whose
  train channel holds a lake in the delivery stream's own layout, downloaded as SageMaker's
  S3Prefix channel downloads it: with this venv's Python, and with the SageMaker scikit-learn
  image's (Python 3.9 and its pins, the venv test_model_container.py builds).
- What it leaves in /opt/ml/model, packed as SageMaker packs it, served by ml's inference code
  and deployed with `deploy --model-uri`.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from ml.data import lake_history
from ml.package import MODEL_FILES, extract, load_inference, package
from ml.sagemaker_job import (
    ENTRY_POINT,
    METRICS,
    ML_DIR,
    SHIPPED_MODULES,
    SKLEARN_FRAMEWORK_VERSION,
    stage_source,
)
from ml.sagemaker_train import main as entry_point_main
from ml.train import train
from tests.functional.test_lake_query import REDELIVERED, Lake, write_lake
from tests.functional.test_model_container import CONTAINER_PINS
from tests.support.venvs import (
    VenvUnavailableError,
    cached_venv,
    sagemaker_sdk_venv,
    sdk_command_env,
)
from tradestream import aws
from tradestream.cfn.stacks import Stacks
from tradestream.cfn.template import TEMPLATE_DIR, StackTemplate, load_template
from tradestream.deploy.api import deploy
from tradestream.deploy.errors import TargetError
from tradestream.deploy.options import DeployOptions
from tradestream.deploy.zips import lambda_functions

ROLE = "arn:aws:iam::123456789012:role/tradestream-training"
PACKAGE_MEMBERS = {*MODEL_FILES, "code/inference.py", "code/features.py"}
TRADES = [{"s": "AAPL", "p": 100 + (i % 4) / 10, "v": i % 3, "t": 1_700_000_000_000 + i * 90}
          for i in range(40)]  # fmt: skip


def _venv_or_skip(build: Any, what: str) -> Path:
    try:
        venv: Path = build()
    except (VenvUnavailableError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run {what}, and cannot build its venv: {exc}")
        pytest.skip(f"{what}'s venv cannot be built here (offline? no such Python?): {exc}")
    return venv


@pytest.mark.parametrize(
    "failure",
    [
        subprocess.CalledProcessError(1, ["pip", "install", "sagemaker"]),
        VenvUnavailableError("no Python 3.9 on PATH"),
    ],
)
def test_a_venv_that_cannot_be_built_skips_saying_why_except_in_ci(
    failure: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    def build() -> Path:
        raise failure

    # GIVEN a venv whose build fails (pip offline, no such interpreter)
    # WHEN a test asks for it outside CI THEN it is skipped, with the reason
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"the SDK's venv cannot be built here"):
        _venv_or_skip(build, "the SDK")
    # AND in CI it fails instead: CI must run these tests
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the SDK"):
        _venv_or_skip(build, "the SDK")


@pytest.fixture(scope="module")
def sdk_python() -> str:
    return str(_venv_or_skip(sagemaker_sdk_venv, "the SageMaker Python SDK") / "bin" / "python")


@pytest.fixture(scope="module")
def container_python() -> str:
    override = os.environ.get("TRADESTREAM_SKLEARN_CONTAINER_PYTHON")
    if override:
        return override
    venv = _venv_or_skip(
        lambda: cached_venv("sagemaker-sklearn-1.2-1", "3.9", CONTAINER_PINS),
        "the scikit-learn container's Python",
    )
    return str(venv / "bin" / "python")


@pytest.fixture
def lake(aws_env: str, unique: str) -> Lake:
    return write_lake(f"sm-lake-{unique}")


def artifacts_stack(prefix: str) -> str:
    """The deployment's artifacts stack, as deploy creates it; returns its bucket."""
    stacks = Stacks(aws.client("cloudformation"), change_sets=False, timeout_s=60, poll_s=0.05)
    template = StackTemplate.load(TEMPLATE_DIR / "artifacts.yaml")
    return stacks.deploy(f"{prefix}-artifacts", template, {}).outputs["BucketName"]


def command_env(url: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    base.pop("BUCKET_NAME", None)
    base.pop("ARTIFACTS_BUCKET", None)
    return sdk_command_env(
        {
            **base,
            "AWS_ENDPOINT_URL": url,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            **extra,
        }
    )


def train_on_sagemaker(python: str, env: dict[str, str], *args: str) -> CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "tradestream.cli.main", "model", "train", "--on", "sagemaker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def result(done: CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout carries the result only: {done.stdout[-2000:]}"
    answer: dict[str, Any] = json.loads(lines[0])
    return answer


def serving_image() -> str:
    tag = load_template(TEMPLATE_DIR / "inference.yaml")["Parameters"]["ImageTag"]["Default"]
    return f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:{tag}"


def s3_object(uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body: bytes = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {
            m.name.removeprefix("./"): archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }


# --- the job the SDK creates ----------------------------------------------------------------


@pytest.mark.slow
def test_the_job_trains_ml_code_in_the_serving_image_on_the_lake_prefix_into_artifacts(
    sdk_python: str, lake: Lake, moto: Any, unique: str
) -> None:
    # GIVEN a deployment's artifacts stack, and its lake named by BUCKET_NAME
    prefix = f"sm{unique}"
    artifacts = artifacts_stack(prefix)
    env = command_env(moto.url, BUCKET_NAME=lake.bucket)

    # WHEN the model is trained on SageMaker, the artifacts bucket found from the stack
    done = train_on_sagemaker(
        sdk_python,
        env,
        *("--prefix", prefix, "--role", ROLE, "--instance-type", "ml.m5.xlarge"),
        *("--seed", "3", "--horizon", "0.5", "--volume-size", "50", "--max-run", "90"),
    )
    answer = result(done)

    # THEN it prints the job, the model.tar.gz it writes to the artifacts bucket, and how to
    # deploy it (moto calls every job Completed at once)
    job = answer["job_name"]
    assert job.startswith(f"{prefix}-train-")
    assert answer["status"] == "Completed"
    assert answer["model_uri"] == f"s3://{artifacts}/model/training/{job}/output/model.tar.gz"
    assert answer["lake_uri"] == f"s3://{lake.bucket}/trades/"
    assert answer["deploy"].endswith(f"--prefix {prefix} --model-uri {answer['model_uri']}")
    assert "Traceback" not in done.stderr
    # AND the job SageMaker was asked for runs ml's entry point in the image the endpoint
    # serves with, on one instance of the type asked for, as the role given
    described = aws.client("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["AlgorithmSpecification"]["TrainingImage"] == serving_image()
    assert serving_image().endswith(f":{SKLEARN_FRAMEWORK_VERSION}-cpu-py3")
    assert described["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert described["RoleArn"] == ROLE
    assert described["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 50,
    }
    assert described["StoppingCondition"]["MaxRuntimeInSeconds"] == 90 * 60
    assert described["EnableNetworkIsolation"] is True
    hyper = {k: json.loads(v) for k, v in described["HyperParameters"].items()}
    assert hyper["sagemaker_program"] == ENTRY_POINT
    assert (hyper["seed"], hyper["horizon"]) == (3, 0.5)
    assert hyper["source"] == answer["lake_uri"]
    # AND its train channel is the lake's data prefix, whole, on every instance
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in described["InputDataConfig"]
    }
    assert channels["train"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": f"s3://{lake.bucket}/trades/",
        "S3DataDistributionType": "FullyReplicated",
    }
    # AND the model goes under the artifacts bucket's training prefix
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://{artifacts}/model/training"
    # AND the code (a channel of its own: the container has no network) is the entry point and
    # ml's modules it imports, byte for byte, staged beside the model
    code_uri = channels["code"]["S3Uri"]
    assert code_uri == f"s3://{artifacts}/model/training/{job}/source/sourcedir.tar.gz"
    assert hyper["sagemaker_submit_directory"] == "/opt/ml/input/data/code/sourcedir.tar.gz"
    shipped = tar_members(s3_object(code_uri))
    assert set(shipped) == {ENTRY_POINT, *(f"ml/{name}" for name in SHIPPED_MODULES)}
    assert shipped["ml/features.py"] == (ML_DIR / "features.py").read_bytes()
    assert shipped[ENTRY_POINT] == (ML_DIR / ENTRY_POINT).read_bytes()


@pytest.mark.slow
def test_buckets_and_role_come_from_the_environment_and_no_wait_returns_the_job(
    sdk_python: str, lake: Lake, moto: Any, unique: str
) -> None:
    # GIVEN no deployment's stacks, but ARTIFACTS_BUCKET, BUCKET_NAME and SAGEMAKER_ROLE_ARN
    artifacts = f"sm-artifacts-{unique}"
    aws.client("s3").create_bucket(Bucket=artifacts)
    env = command_env(
        moto.url,
        BUCKET_NAME=lake.bucket,
        DATA_PREFIX="trades/symbol=AAPL/",
        ARTIFACTS_BUCKET=artifacts,
        SAGEMAKER_ROLE_ARN=ROLE,
    )
    # WHEN a job is started without waiting for it
    answer = result(train_on_sagemaker(sdk_python, env, "--no-wait", "--prefix", f"none{unique}"))
    # THEN it reads the prefix given, writes where the variables say, as the role they name
    described = aws.client("sagemaker").describe_training_job(TrainingJobName=answer["job_name"])
    assert answer["job_name"].startswith(f"none{unique}-train-")
    train_channel = described["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert train_channel["S3Uri"] == f"s3://{lake.bucket}/trades/symbol=AAPL/"
    assert described["RoleArn"] == ROLE
    assert answer["model_uri"].startswith(f"s3://{artifacts}/model/training/")


def test_without_a_deployment_or_variables_the_command_says_what_to_set(
    sdk_python: str, moto: Any, unique: str
) -> None:
    # GIVEN neither BUCKET_NAME nor a deployment's lake stack
    env = command_env(moto.url)
    # WHEN a job is asked for
    done = train_on_sagemaker(sdk_python, env, "--role", ROLE, "--prefix", f"nothing{unique}")
    # THEN it exits 1 naming the variable and the stack, and creates no job
    assert done.returncode == 1
    assert f"no stack nothing{unique}-lake" in done.stderr
    assert "set BUCKET_NAME" in done.stderr
    assert "[BucketUnknown]" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# --- the entry point, on the job's input layout -----------------------------------------------


def download_channel(bucket: str, prefix: str, into: Path) -> int:
    """What an S3Prefix channel in File mode does: every object under the prefix, at its key
    below the prefix; returns how many."""
    s3 = aws.client("s3")
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            path = into / entry["Key"].removeprefix(prefix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
            count += 1
    return count


def opt_ml(root: Path) -> dict[str, str]:
    """The SM_* variables the training toolkit sets, for a /opt/ml at ``root``."""
    return {
        "SM_CHANNEL_TRAIN": str(root / "input" / "data" / "train"),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_HPS": json.dumps({"seed": 7, "horizon": 0.25}),
    }


# Core is not in the image: the project's own interpreter runs the entry point with it blocked.
NO_CORE = (
    "import runpy, sys; sys.modules['tradestream'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run_entry_point(python: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = stage_source(root / "code")
    # This environment, BLAS settings included (OPENBLAS_CORETYPE picks other kernels, which
    # round differently), without what would make the checkout importable.
    inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env = {**inherited, **opt_ml(root)}
    command = [python, "-c", NO_CORE] if python == sys.executable else [python]
    return subprocess.run(
        [*command, ENTRY_POINT, *args],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def packed_as_sagemaker(model_dir: Path, out: Path) -> Path:
    """model.tar.gz as SageMaker packs /opt/ml/model at the job's end: its contents, at the root."""
    with tarfile.open(out, "w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return out


@pytest.mark.parametrize("interpreter", ["project", "container"])
def test_the_entry_point_trains_on_the_channel_what_a_local_retrain_trains(
    interpreter: str, lake: Lake, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    python = (
        sys.executable if interpreter == "project" else request.getfixturevalue("container_python")
    )
    # GIVEN /opt/ml with the lake's data prefix downloaded into the train channel
    root = tmp_path / "opt-ml"
    objects = download_channel(lake.bucket, "trades/", root / "input" / "data" / "train")
    assert objects == len(lake.keys)
    source = f"s3://{lake.bucket}/trades/"

    # WHEN the container runs the entry point with the job's hyperparameters as arguments
    done = run_entry_point(python, root, "--seed", "7", "--horizon", "0.25", "--source", source)

    # THEN it succeeds, and /opt/ml/model holds exactly the package's members
    assert done.returncode == 0, done.stderr[-3000:]
    model_dir = root / "model"
    found = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    assert found == PACKAGE_MEMBERS
    # AND it trained on every distinct trade of the lake once (redeliveries collapsed)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    distinct = {line["id"] for line in lake.lines}
    assert metadata["training"]["trades"] == len(distinct)
    assert metadata["training"]["source"] == source
    stats = json.loads((root / "output" / "data" / "lake-stats.json").read_text())
    assert (stats["objects"], stats["duplicates"], stats["skipped"]) == (objects, REDELIVERED, 0)
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert (root / "output" / "data" / "model-card.md").read_text().startswith("# Model card")
    # AND the metric lines it prints are what the job's metric definitions pick up
    for name in METRICS:
        [value] = re.findall(f"metric {name}=(\\S+)", done.stdout)
        assert float(value) == pytest.approx(metrics[name], rel=1e-12)
    # AND the model SageMaker would pack from it loads in ml's inference code and predicts what
    # a local retrain on the same lake predicts (the same model, to another numpy's rounding)
    served = extract(packed_as_sagemaker(model_dir, tmp_path / "model.tar.gz"), tmp_path / "x")
    inference = load_inference(served)
    model = inference.model_fn(str(served))
    local = train(tmp_path / "local", trades=lake_history(lake.bucket), seed=7, source=source)
    assert model["model_version"] == metadata["model_version"]
    if interpreter == "project":
        assert metadata["model_version"] == local.model_version
    retrained = inference.model_fn(
        str(extract(package(local.model_dir, tmp_path / "l.tar.gz"), tmp_path / "l"))
    )
    predicted = inference.predict_fn(TRADES, model)["predictions"]
    expected = inference.predict_fn(TRADES, retrained)["predictions"]
    assert len(set(predicted)) > 1  # a model that says something, not a constant
    assert predicted == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_a_channel_without_enough_trades_fails_the_job_with_its_reason(tmp_path: Path) -> None:
    # GIVEN a train channel holding one object of too few trades and a line that is not one
    root = tmp_path / "opt-ml"
    part = root / "input" / "data" / "train" / "symbol=AAPL" / "date=2023-11-14"
    part.mkdir(parents=True)
    (part / "lake-1").write_text("".join(json.dumps(t) + "\n" for t in TRADES) + "{oops\n")
    # WHEN the entry point runs
    done = run_entry_point(sys.executable, root)
    # THEN it exits 1, leaves no model, and says why where SageMaker reads a job's FailureReason
    assert done.returncode == 1
    assert not (root / "model").exists() or not any((root / "model").iterdir())
    reason = (root / "output" / "failure").read_text()
    assert reason.startswith("TrainingDataError: ")
    assert "(1 objects, 41 lines)" in reason


# --- deploy takes it ----------------------------------------------------------------------------


@pytest.fixture
def trained_in_artifacts(aws_env: str, lake: Lake, unique: str, tmp_path: Path) -> tuple[str, str]:
    """(prefix, model URI): a deployment's artifacts stack holding a training job's output, as
    SageMaker writes it: the entry point's /opt/ml/model, packed."""
    prefix = f"dm{unique}"
    bucket = artifacts_stack(prefix)
    root = tmp_path / "opt-ml"
    download_channel(lake.bucket, "trades/", root / "input" / "data" / "train")
    assert entry_point_main(["--source", f"s3://{lake.bucket}/trades/"], opt_ml(root)) == 0
    artifact = packed_as_sagemaker(root / "model", tmp_path / "model.tar.gz")
    key = f"model/training/{prefix}-train-1/output/model.tar.gz"
    aws.client("s3").upload_file(str(artifact), bucket, key)
    return prefix, f"s3://{bucket}/{key}"


def fake_zips(tmp_path: Path) -> dict[str, Path]:
    # moto stores Lambda code without running it: any zip will do for these stacks.
    import zipfile

    zips = {}
    for function in lambda_functions():
        path = tmp_path / f"{function.name}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
        zips[function.name] = path
    return zips


def test_deploy_serves_the_trained_model_from_the_artifacts_bucket_as_it_is(
    trained_in_artifacts: tuple[str, str], tmp_path: Path
) -> None:
    # GIVEN a training job's model.tar.gz in the deployment's artifacts bucket
    prefix, uri = trained_in_artifacts
    bucket = uri.removeprefix("s3://").split("/")[0]
    # WHEN the deployment is deployed with that model URI
    options = DeployOptions(prefix=prefix, model_uri=uri, zips=fake_zips(tmp_path))
    outputs = deploy("local", options)
    # THEN the endpoint's model is that object, and no other model was uploaded or built
    assert outputs["inference.ModelDataUrl"] == uri
    sagemaker = aws.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=outputs["endpoint"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == uri
    listed = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="model/")["Contents"]
    assert [o["Key"] for o in listed] == [uri.removeprefix(f"s3://{bucket}/")]


def test_deploy_refuses_a_model_uri_outside_the_artifacts_bucket_or_missing(
    trained_in_artifacts: tuple[str, str], tmp_path: Path
) -> None:
    # GIVEN a deployment whose artifacts bucket holds a trained model
    prefix, uri = trained_in_artifacts
    zips = fake_zips(tmp_path)
    # WHEN deploy is given a model in another bucket, or a key nothing was written to
    elsewhere = DeployOptions(
        prefix=prefix, model_uri="s3://other-bucket/m/model.tar.gz", zips=zips
    )
    missing = DeployOptions(prefix=prefix, model_uri=uri.replace("train-1", "train-2"), zips=zips)
    # THEN it stops before the inference stack, saying what to do
    with pytest.raises(TargetError, match="not in the artifacts bucket"):
        deploy("local", elsewhere)
    with pytest.raises(TargetError, match=r"cannot be read \(404\): has its training job"):
        deploy("local", missing)
    assert (
        Stacks(aws.client("cloudformation"), change_sets=False).describe(f"{prefix}-inference")
        is None
    )
