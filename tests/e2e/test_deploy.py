"""`tradestream deploy --target local` and `tradestream destroy`, run as commands (subprocesses)
against the session's moto server over HTTP: every stack the AWS target deploys, with the real
Lambda zips and model artifact uploaded and wired in, a rerun that changes nothing, and a teardown
that leaves nothing but the lake (unless asked).

moto's CloudFormation goes through CreateStack/UpdateStack here (tradestream.deploy.targets);
the change-set path AWS takes is tested on its own in tests/functional/test_deploy_stacks.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tradestream.local.moto_server import MotoHandle

pytestmark = pytest.mark.slow

COMPONENTS = (
    "artifacts",
    "stream",
    "hotstore",
    "inference",
    "lake",
    "producer",
    "ingest",
    "alarms",
)
SETTLED = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}


@dataclass
class Deployment:
    prefix: str
    env: dict[str, str]
    cwd: Path
    outputs: dict[str, str]
    url: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def command_env(url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **base,
        "AWS_ENDPOINT_URL": url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def tradestream(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradestream.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def deploy_args(prefix: str) -> list[str]:
    return [
        "deploy",
        "--target",
        "local",
        "--prefix",
        prefix,
        "--producer-image",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/tradestream-producer:1",
        "--ingest-image",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/tradestream-ingest:1",
    ]


def result(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "stdout carries the result only"
    answer: dict[str, str] = json.loads(lines[0])
    return answer


@pytest.fixture(scope="module")
def deployment(moto: MotoHandle, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    prefix = "ts" + os.urandom(3).hex()
    env = command_env(moto.url)
    cwd = tmp_path_factory.mktemp("deploy")
    outputs = result(tradestream(deploy_args(prefix), env, cwd))
    return Deployment(prefix, env, cwd, outputs, moto.url)


def stacks_of(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """The deployment's live stacks by component (one DescribeStacks listing for all of them;
    paged, since the session's moto server holds other tests' stacks too)."""
    pages = deployment.client("cloudformation").get_paginator("describe_stacks").paginate()
    live = {
        s["StackName"]: s
        for page in pages
        for s in page["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    }
    names = {c: f"{deployment.prefix}-{c}" for c in COMPONENTS}
    return {c: live[name] for c, name in names.items() if name in live}


def test_deploy_creates_every_stack_and_prints_what_users_need(deployment: Deployment) -> None:
    # GIVEN a deploy with both images (fixture) WHEN the stacks are described
    stacks = stacks_of(deployment)
    outputs = deployment.outputs
    prefix = deployment.prefix

    # THEN every component has its stack, complete
    assert set(stacks) == set(COMPONENTS)
    assert {s["StackStatus"] for s in stacks.values()} <= SETTLED
    # AND the printed result names what a user reaches for, under the names `up` prints too
    assert outputs["target"] == "local"
    assert outputs["stream"] == f"{prefix}-trades"
    assert outputs["table"] == f"{prefix}-stock_trades"
    # (moto names a SageMaker endpoint itself, ignoring the template's EndpointName: AWS does not)
    assert outputs["endpoint"] == outputs["inference.EndpointName"]
    assert outputs["bucket"] == f"{prefix}-lake-123456789012-us-east-1"
    assert outputs["ingest_url"].startswith("http://")
    assert outputs["alarm_topic"].startswith("arn:aws:sns:")
    # AND those resources exist: the stream, the table, the lake bucket
    kinesis = deployment.client("kinesis")
    summary = kinesis.describe_stream_summary(StreamName=outputs["stream"])
    assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    assert deployment.client("dynamodb").describe_table(TableName=outputs["table"])["Table"]
    deployment.client("s3").head_bucket(Bucket=outputs["bucket"])


def test_functions_run_the_uploaded_zips_and_the_endpoint_the_uploaded_model(
    deployment: Deployment,
) -> None:
    # GIVEN the artifacts bucket WHEN its objects are listed
    s3 = deployment.client("s3")
    bucket = deployment.outputs["artifacts_bucket"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]

    # THEN each function's zip and the model are there, under content-addressed keys
    zips = sorted(k for k in keys if k.startswith("lambdas/"))
    models = [k for k in keys if k.startswith("model/")]
    assert [k.split("-")[0] for k in zips] == ["lambdas/enrich", "lambdas/hotstore"]
    assert len(models) == 1
    assert models[0].endswith(".tar.gz")
    for key in (*zips, *models):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest()[:16] in key
    # AND the hotstore function runs exactly its zip, with the handler its template names. (The
    # enrich function belongs to the lake's delivery stream, which moto cannot create: the local
    # target deploys the lake's local flavour, its bucket, so only its zip is checked.)
    awslambda = deployment.client("lambda")
    for name in ("hotstore",):
        [key] = [k for k in zips if k.startswith(f"lambdas/{name}-")]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        config = awslambda.get_function(FunctionName=f"{deployment.prefix}-{name}")["Configuration"]
        assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert config["Handler"] == f"lambdas.{name}.handler.handler"
    # AND the hotstore function reads the stream through a mapping
    mappings = awslambda.list_event_source_mappings(FunctionName=f"{deployment.prefix}-hotstore")[
        "EventSourceMappings"
    ]
    assert [m["EventSourceArn"] for m in mappings] == [deployment.outputs["stream_arn"]]
    # AND the endpoint serves the model uploaded
    sagemaker = deployment.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=deployment.outputs["endpoint"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{bucket}/{models[0]}"


def test_a_second_deploy_changes_nothing(deployment: Deployment) -> None:
    # GIVEN the deployed stacks and artifacts
    before = {c: s.get("LastUpdatedTime") for c, s in stacks_of(deployment).items()}
    s3 = deployment.client("s3")
    bucket = deployment.outputs["artifacts_bucket"]
    objects = s3.list_objects_v2(Bucket=bucket)["KeyCount"]

    # WHEN the same deploy runs again
    again = result(tradestream(deploy_args(deployment.prefix), deployment.env, deployment.cwd))

    # THEN it prints the same outputs, updates no stack and uploads nothing new
    assert again == deployment.outputs
    after = {c: s.get("LastUpdatedTime") for c, s in stacks_of(deployment).items()}
    assert after == before
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == objects


@pytest.fixture
def small_deployment(moto: MotoHandle, tmp_path: Path) -> Deployment:
    """A deployment without the ECS stacks, for the teardown tests."""
    prefix = "td" + os.urandom(3).hex()
    env = command_env(moto.url)
    outputs = result(
        tradestream(["deploy", "--target", "local", "--prefix", prefix], env, tmp_path)
    )
    return Deployment(prefix, env, tmp_path, outputs, moto.url)


def test_destroy_removes_every_stack_and_keeps_the_lake_unless_asked(
    small_deployment: Deployment,
) -> None:
    # GIVEN a deployment whose lake holds data
    deployment = small_deployment
    s3 = deployment.client("s3")
    lake = deployment.outputs["bucket"]
    s3.put_object(Bucket=lake, Key="trades/part-0.json.gz", Body=b"x")
    assert set(stacks_of(deployment)) == set(COMPONENTS) - {"producer", "ingest"}
    destroy = ["destroy", "--target", "local", "--prefix", deployment.prefix]

    # WHEN it is destroyed
    report = result(tradestream(destroy, deployment.env, deployment.cwd))

    # THEN every stack is gone, and the lake bucket is kept with its data
    assert stacks_of(deployment) == {}
    prefix = deployment.prefix
    for component in ("artifacts", "stream", "hotstore", "inference", "lake", "alarms"):
        assert report[f"{prefix}-{component}"] == "deleted"
    assert report[f"{prefix}-producer"] == report[f"{prefix}-ingest"] == "absent"
    assert report[f"s3://{lake}"].startswith("kept")
    assert s3.list_objects_v2(Bucket=lake)["KeyCount"] == 1
    # AND the artifacts bucket, emptied first, is gone with its stack
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert deployment.outputs["artifacts_bucket"] not in buckets

    # WHEN destroyed again, with the data this time
    again = result(tradestream([*destroy, "--delete-data"], deployment.env, deployment.cwd))

    # THEN there was nothing left but the lake, and now it is gone too
    assert {v for k, v in again.items() if not k.startswith("s3://")} == {"absent"}
    assert again[f"s3://{lake}"] == "deleted"
    assert lake not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
