"""Each Lambda zip, unzipped into a fresh venv that has only boto3 (as the Lambda Python runtime
does), imports its handler and handles a sample event against moto server.

The zips are built exactly as `tradestream deploy` builds them (manylinux wheels, installed with
``--platform``), only for this interpreter's Python version instead of the template's Runtime
(python3.12): this machine runs the test with its own Python.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ml.serve import start_in_thread
from tests.support.hotstore import create_table_and_dlq
from tradestream import aws
from tradestream.deploy.zips import (
    RUNTIME_PROVIDED,
    LambdaFunction,
    build_lambda_zips,
    lambda_functions,
    unzip,
)
from tradestream.local.moto_server import MotoHandle

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# What the Lambda runtime does: put the code on sys.path, import the handler, call it.
RUNNER = """
import json, sys, importlib
sys.path.insert(0, sys.argv[1])
class Context:
    function_name = "fn"; memory_limit_in_mb = 256; aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    def get_remaining_time_in_millis(self): return 60_000
module, _, name = sys.argv[2].rpartition(".")
handler = getattr(importlib.import_module(module), name)
print(json.dumps(handler(json.load(open(sys.argv[3])), Context())))
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def functions() -> dict[str, LambdaFunction]:
    return {f.name: f for f in lambda_functions()}


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_lambda_zips(tmp_path_factory.mktemp("zips"), python_version=THIS_PYTHON)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with boto3 and nothing else of this project's dependencies (pip's cache makes it
    quick; it is built once for the module)."""
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "boto3"],
        check=True,
    )
    return python


@pytest.fixture
def lambda_env(moto: MotoHandle) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    return {
        **base,
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def run_handler(
    python: Path, zip_path: Path, handler: str, event: Path, env: dict[str, str], tmp: Path
) -> dict[str, object]:
    code = unzip(zip_path, tmp / zip_path.stem)
    result = subprocess.run(
        [str(python), "-c", RUNNER, str(code), handler, str(event)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,  # not the repository: nothing may be imported from the checkout
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_the_functions_are_read_from_the_templates(functions: dict[str, LambdaFunction]) -> None:
    # GIVEN the templates WHEN their Lambda functions are listed THEN both are, with the
    # template's runtime and the parameters their code location refers to
    assert functions["hotstore"].handler == "lambdas.hotstore.handler.handler"
    assert functions["hotstore"].template == "hotstore.yaml"
    assert functions["enrich"].handler == "lambdas.enrich.handler.handler"
    assert functions["enrich"].template == "lake.yaml"
    for function in functions.values():
        assert function.python_version == "3.12"
        assert (function.bucket_parameter, function.key_parameter) == ("CodeS3Bucket", "CodeS3Key")


def test_zips_carry_the_function_and_what_it_imports_only(
    zips: dict[str, Path], functions: dict[str, LambdaFunction]
) -> None:
    assert set(zips) == set(functions)
    for name, path in zips.items():
        names = zipfile.ZipFile(path).namelist()
        # the function's package, the core modules it imports, its third-party dependencies
        assert f"lambdas/{name}/handler.py" in names
        for core in ("lambdas/__init__.py", "tradestream/__init__.py", "tradestream/trade.py"):
            assert core in names, (name, core)
        for dependency in ("pydantic/", "pydantic_core/", "pydantic_settings/"):
            assert any(n.startswith(dependency) for n in names), (name, dependency)
        assert any(n.startswith("aws_lambda_powertools/") for n in names)
        # and nothing else: no other deployable, no other function, nothing the runtime has
        others = [f"lambdas/{o}/" for o in set(functions) - {name}]
        for forbidden in ("producer/", "ingest_api/", "ml/", "moto/", "aiobotocore/", *others):
            assert not any(n.startswith(forbidden) for n in names), (name, forbidden)
        for provided in RUNTIME_PROVIDED:
            assert not any(n.startswith(f"{provided}/") for n in names), (name, provided)
        assert "tradestream/local/__init__.py" not in names
        assert not any(n.startswith(("tradestream/cli/", "tradestream/cfn/")) for n in names)
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_zips_are_readable_by_lambda_and_reproducible(
    zips: dict[str, Path], tmp_path: Path, functions: dict[str, LambdaFunction]
) -> None:
    # GIVEN a second build of one function
    again = build_lambda_zips(
        tmp_path, python_version=THIS_PYTHON, functions=[functions["hotstore"]]
    )
    # THEN it is byte for byte the same (same content key, no needless redeploy) ...
    digest = [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (zips["hotstore"], again["hotstore"])
    ]
    assert digest[0] == digest[1]
    # ... and every file is world-readable (Lambda runs the code as another user)
    for info in zipfile.ZipFile(zips["hotstore"]).infolist():
        assert (info.external_attr >> 16) & 0o444 == 0o444, info.filename


def test_the_deploy_build_targets_lambdas_platform_and_runtime(zips: dict[str, Path]) -> None:
    # the compiled dependency is a manylinux wheel for the requested Python, not this machine's
    names = zipfile.ZipFile(zips["hotstore"]).namelist()
    tag = THIS_PYTHON.replace(".", "")
    compiled = [n for n in names if n.startswith("pydantic_core/") and n.endswith(".so")]
    assert compiled
    assert all(f"cpython-{tag}-x86_64-linux-gnu" in n for n in compiled)
    wheel = next(n for n in names if n.startswith("pydantic_core-") and n.endswith("/WHEEL"))
    assert "manylinux" in zipfile.ZipFile(zips["hotstore"]).read(wheel).decode()


def test_bare_venv_has_boto3_only(bare_python: Path, tmp_path: Path) -> None:
    def imports(module: str) -> bool:
        # From an empty directory: `python -c` puts the working directory on sys.path.
        command = [str(bare_python), "-c", f"import {module}"]
        return (
            subprocess.run(command, cwd=tmp_path, capture_output=True, check=False).returncode == 0
        )

    assert imports("boto3")
    for missing in ("pydantic", "aws_lambda_powertools", "tradestream", "lambdas"):
        assert not imports(missing), missing


def test_hotstore_zip_handles_the_poison_sample(
    zips: dict[str, Path],
    bare_python: Path,
    lambda_env: dict[str, str],
    unique: str,
    tmp_path: Path,
    aws_env: str,
) -> None:
    # GIVEN a table and DLQ, and the sample batch: 3 valid trades and 3 poison records
    dynamodb, sqs = aws.client("dynamodb"), aws.client("sqs")
    table, queue = create_table_and_dlq(dynamodb, sqs, f"zip-{unique}")
    env = {**lambda_env, "TABLE_NAME": table, "DLQ_URL": queue}
    event = EVENTS / "kinesis_hotstore_poison.json"

    # WHEN the zipped handler runs it in the bare venv
    answer = run_handler(
        bare_python, zips["hotstore"], "lambdas.hotstore.handler.handler", event, env, tmp_path
    )

    # THEN it answers the mapping's shape, with nothing to retry ...
    assert answer == {"batchItemFailures": []}
    # ... the valid trades are in the table and the poison records, with their data, in the DLQ
    assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 3
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert len(bodies) == 3
    records = {r["kinesis"]["sequenceNumber"]: r for r in json.loads(event.read_text())["Records"]}
    for body in bodies:
        assert body["source"] == "tradestream.hotstore"
        assert base64.b64decode(body["data"]) == base64.b64decode(
            records[body["sequenceNumber"]]["kinesis"]["data"]
        )


def test_enrich_zip_handles_the_firehose_sample(
    zips: dict[str, Path], bare_python: Path, lambda_env: dict[str, str], tmp_path: Path
) -> None:
    # GIVEN the local model server behind the SageMaker runtime API
    server = start_in_thread()
    try:
        env = {
            **lambda_env,
            "ENDPOINT_NAME": "tradestream-model",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url,
        }
        event = EVENTS / "firehose_enrich_batch.json"
        # WHEN the zipped handler transforms the sample Firehose batch in the bare venv
        answer = run_handler(
            bare_python, zips["enrich"], "lambdas.enrich.handler.handler", event, env, tmp_path
        )
    finally:
        server.stop()

    # THEN every recordId is answered with a valid result, and valid trades carry predictions
    records = answer["records"]
    assert isinstance(records, list)
    sent = json.loads(event.read_text())["records"]
    assert [r["recordId"] for r in records] == [r["recordId"] for r in sent]
    assert {r["result"] for r in records} <= {"Ok", "Dropped", "ProcessingFailed"}
    enriched = [json.loads(base64.b64decode(r["data"])) for r in records if r["result"] == "Ok"]
    assert enriched
    assert all(e["prediction"] is not None and e["model_version"] for e in enriched)
