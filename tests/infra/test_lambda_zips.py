"""Each Lambda zip, unzipped into a fresh venv that has only boto3, imports its handler and
handles a sample event, as in the Lambda Python runtime (which carries boto3 and nothing else)."""

from __future__ import annotations

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
from tradestream.deploy.zips import FUNCTIONS, build_lambda_zips, unzip
from tradestream.local.moto_server import MotoHandle

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"
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
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("zips")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return build_lambda_zips(out, python_version=version, platform=None)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "boto3"], check=True)
    return python


def run_handler(
    python: Path, zip_path: Path, handler: str, event: Path, env: dict[str, str], tmp: Path
) -> dict[str, object]:
    code = unzip(zip_path, tmp / zip_path.stem)
    result = subprocess.run(
        [str(python), "-c", RUNNER, str(code), handler, str(event)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


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


def test_zips_carry_the_function_and_core_but_not_the_rest(zips: dict[str, Path]) -> None:
    assert set(zips) == {f.name for f in FUNCTIONS}
    for name, path in zips.items():
        names = zipfile.ZipFile(path).namelist()
        assert f"lambdas/{name}/handler.py" in names
        assert "tradestream/trade.py" in names
        assert any(n.startswith("pydantic/") for n in names)
        other = {f.name for f in FUNCTIONS} - {name}
        for forbidden in ("producer/", "ingest_api/", "ml/", "moto/", "aiobotocore/", "boto3/"):
            assert not any(n.startswith(forbidden) for n in names), (name, forbidden)
        assert not any(n.startswith(f"lambdas/{o}/") for o in other for n in names)


def test_bare_venv_has_boto3_only(bare_python: Path) -> None:
    missing = subprocess.run(
        [str(bare_python), "-c", "import pydantic"], capture_output=True, check=False
    )
    assert missing.returncode != 0


def test_hotstore_zip_handles_the_poison_sample(
    zips: dict[str, Path],
    bare_python: Path,
    lambda_env: dict[str, str],
    unique: str,
    tmp_path: Path,
    aws_env: str,
) -> None:
    dynamodb, sqs = aws.client("dynamodb"), aws.client("sqs")
    table, queue = create_table_and_dlq(dynamodb, sqs, f"zip-{unique}")
    env = {**lambda_env, "TABLE_NAME": table, "DLQ_URL": queue}
    answer = run_handler(
        bare_python,
        zips["hotstore"],
        "lambdas.hotstore.handler.handler",
        EVENTS / "kinesis_hotstore_poison.json",
        env,
        tmp_path,
    )
    assert answer == {"batchItemFailures": []}
    assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 3
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == 3


def test_enrich_zip_handles_the_firehose_sample(
    zips: dict[str, Path], bare_python: Path, lambda_env: dict[str, str], tmp_path: Path
) -> None:
    server = start_in_thread()
    try:
        env = {
            **lambda_env,
            "ENDPOINT_NAME": "tradestream-model",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url,
        }
        event = EVENTS / "firehose_enrich_batch.json"
        answer = run_handler(
            bare_python, zips["enrich"], "lambdas.enrich.handler.handler", event, env, tmp_path
        )
    finally:
        server.stop()
    records = answer["records"]
    assert isinstance(records, list)
    assert len(records) == len(json.loads(event.read_text())["records"])
    assert {r["result"] for r in records} <= {"Ok", "Dropped", "ProcessingFailed"}
    assert any(r["result"] == "Ok" for r in records)
