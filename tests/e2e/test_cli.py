"""The `tradestream` command as a user runs it: a subprocess; stdout for results, stderr logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx

from tradestream.local.moto_server import MotoHandle

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"


def tradestream(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    return subprocess.run(
        [sys.executable, "-m", "tradestream.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def test_demo_json_reconciles_produced_with_items_in_dynamodb() -> None:
    # WHEN the demo runs for 1,500 trades on its own embedded stack
    result = tradestream("demo", "--trades", "1500", "--json")
    # THEN it succeeds and its last stdout line is one JSON object whose counts reconcile
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["produced"] == summary["hotstore_items"] == 1500
    # AND every trade is in the lake with a prediction, and nothing went to its error prefix
    assert summary["lake_records"] == summary["predicted"] == 1500
    assert summary["lake_errors"] == 0
    assert summary["published_records"] >= 1500  # the synthetic source re-sends some trades
    assert summary["dlq"] == 0
    assert summary["drained"] is True
    assert 0 <= summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    # AND it says at which pace that latency was measured: by default a sustainable one
    assert summary["pace"] == "steady 1,000 trades/s"
    # AND the live progress went to stderr
    assert "produced" in result.stderr


def test_local_invoke_prints_the_handlers_response_as_the_last_line() -> None:
    # WHEN the hotstore handler is invoked with the poison sample event
    result = tradestream(
        "local", "invoke", "hotstore", "--event", str(EVENTS / "kinesis_hotstore_poison.json")
    )
    # THEN the last stdout line is its response: poison records went to the DLQ, none reported
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}


def test_up_prints_one_ready_line_then_serves_until_sigterm(tmp_path: Path) -> None:
    # GIVEN `tradestream up` with no producer, and a ready file (the runtime image's health check)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    ready_file = tmp_path / "ready"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradestream.cli.main",
            "up",
            "--source",
            "none",
            "--ready-file",
            str(ready_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        # WHEN it is ready
        ready = json.loads(process.stdout.readline())
        # THEN the ready line names a live endpoint with the stream and table deployed
        for key in ("aws_endpoint", "region", "stream", "table", "bucket", "model_url"):
            assert ready[key]
        session = dict(
            endpoint_url=ready["aws_endpoint"],
            region_name=ready["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        summary = boto3.client("kinesis", **session).describe_stream_summary(
            StreamName=ready["stream"]
        )
        assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
        table = boto3.client("dynamodb", **session).describe_table(TableName=ready["table"])
        assert table["Table"]["TableStatus"] == "ACTIVE"
        # AND the ready file holds the same line
        assert json.loads(ready_file.read_text()) == ready
        # AND SIGTERM stops it cleanly, with nothing more on stdout, and removes the ready file
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        assert rest == ""
        assert not ready_file.exists()
    finally:
        if process.poll() is None:
            process.kill()


def test_up_with_the_synthetic_source_fills_the_table_until_sigterm(tmp_path: Path) -> None:
    # GIVEN `tradestream up` with the synthetic producer
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradestream.cli.main", "up", "--source", "synthetic"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**env, "SYNTHETIC_RATE": "500"},
        )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=ready["aws_endpoint"],
            region_name=ready["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        # WHEN it runs for a while
        deadline = time.monotonic() + 30
        count = 0
        while time.monotonic() < deadline and count < 200:
            time.sleep(0.5)
            count = dynamodb.scan(TableName=ready["table"], Select="COUNT")["Count"]
        # THEN trades arrive in DynamoDB through the hot path, and SIGTERM stops it cleanly
        assert count >= 200, log.read_text()[-3000:]
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()


def test_up_with_api_keys_serves_ingest_and_posted_trades_reach_dynamodb(tmp_path: Path) -> None:
    # GIVEN `tradestream up --source none` with an API key configured
    key = "e2e-ingest-key-0123456789"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tradestream.cli.main", "up", "--source", "none"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**env, "INGEST_API_KEYS": key},
        )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        # WHEN a client POSTs 40 trades (NDJSON) to the ingest URL of the ready line
        t0 = int(time.time() * 1000) - 60_000
        trades = [{"s": "AAPL", "p": 100 + i / 100, "v": 1, "t": t0 + i} for i in range(40)]
        body = "\n".join(json.dumps(t) for t in trades)
        answer = httpx.post(
            f"{ready['ingest_url']}/v1/trades",
            content=body,
            headers={"X-API-Key": key, "Content-Type": "application/x-ndjson"},
            timeout=30,
        )
        # THEN it is accepted durably, and every trade arrives in DynamoDB through the hot path
        assert answer.status_code == 202, answer.text
        ids = set(answer.json()["ids"])
        assert len(ids) == 40
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=ready["aws_endpoint"],
            region_name=ready["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        stored: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stored != ids:
            time.sleep(0.3)
            items = dynamodb.scan(TableName=ready["table"], ProjectionExpression="id")["Items"]
            stored = {item["id"]["S"] for item in items}
        assert stored == ids, log.read_text()[-3000:]
        # ... and the same service reads them back from the hot store, in time order
        page = httpx.get(
            f"{ready['ingest_url']}/v1/trades",
            params={"symbol": "AAPL", "from": t0, "limit": 1000},
            headers={"X-API-Key": key},
            timeout=30,
        ).json()
        assert [t["t"] for t in page["trades"]] == [t["t"] for t in trades]
        assert {t["id"] for t in page["trades"]} == ids
        assert page["cursor"] is None
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()


def test_local_runtime_needs_an_endpoint_and_runs_against_one(moto: MotoHandle) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    # GIVEN no AWS_ENDPOINT_URL: a usage error (compose always names LocalStack)
    refused = tradestream("local", "runtime")
    assert refused.returncode == 2
    assert "AWS_ENDPOINT_URL" in refused.stderr
    # WHEN it is pointed at a running endpoint (moto here, LocalStack in compose)
    process = subprocess.Popen(
        [sys.executable, "-m", "tradestream.cli.main", "local", "runtime"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={
            **env,
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "STREAM_NAME": "runtime-trades",
            "TABLE_NAME": "runtime_trades",
        },
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        # THEN it deploys into that endpoint and serves until SIGTERM
        assert ready["aws_endpoint"] == moto.url
        assert ready["stream"] == "runtime-trades"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_localstack_deploy_creates_the_local_flavour_and_exits(
    moto: MotoHandle, unique: str
) -> None:
    # WHEN the compose one-shot deploy runs against an endpoint (moto standing in for LocalStack)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "tradestream.cli.main", "deploy", "--target", "localstack"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **env,
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "STREAM_NAME": f"deploy-{unique}",
            "TABLE_NAME": f"deploy_{unique}",
            "BUCKET_NAME": f"lake-{unique}",
        },
    )
    # THEN it exits 0 and prints the deployed names, which exist in the endpoint
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert outputs["stream"] == f"deploy-{unique}"
    session = dict(
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    boto3.client("s3", **session).head_bucket(Bucket=outputs["bucket"])
    boto3.client("dynamodb", **session).describe_table(TableName=outputs["table"])
