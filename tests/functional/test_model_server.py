"""The local model server answers an unmodified boto3 sagemaker-runtime client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from ml.package import package
from ml.serve import RunningServer, start_in_thread
from ml.train import train

T0 = 1_700_000_000_000
TRADES = [
    {"s": "AAPL", "p": 100 + i / 10, "v": (i % 3) * 10, "t": T0 + i * 250} for i in range(40)
] + [{"s": "MSFT", "p": 300 - i / 10, "v": 5, "t": T0 + i * 300} for i in range(20)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("model")
    result = train(root / "model", n_trades=3000, seed=1)
    running = start_in_thread(package(result.model_dir, root / "model.tar.gz"))
    yield running
    running.stop()


@pytest.fixture
def runtime(server: RunningServer) -> object:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def invoke(runtime: object, body: str, content_type: str, accept: str) -> bytes:
    answer = runtime.invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="tradestream-model", ContentType=content_type, Accept=accept, Body=body
    )
    data: bytes = answer["Body"].read()
    return data


def test_json_jsonlines_and_csv_give_the_same_predictions_in_input_order(runtime: object) -> None:
    as_json = json.loads(
        invoke(runtime, json.dumps(TRADES), "application/json", "application/json")
    )
    jsonlines = "\n".join(json.dumps(t) for t in TRADES)
    as_lines = invoke(runtime, jsonlines, "application/jsonlines", "application/jsonlines")
    csv_body = "\n".join(f"{t['s']},{t['p']},{t['v']},{t['t']}" for t in TRADES)
    as_csv = invoke(runtime, csv_body, "text/csv", "text/csv")

    predictions = as_json["predictions"]
    assert len(predictions) == len(TRADES)
    assert as_json["model_version"].startswith("ridge-")
    assert [json.loads(line)["prediction"] for line in as_lines.splitlines()] == predictions
    assert [float(v) for v in as_csv.decode().split()] == predictions
    # input order: the same trades reversed give the same predictions reversed
    reverse = json.loads(
        invoke(runtime, json.dumps(TRADES[::-1]), "application/json", "application/json")
    )
    assert reverse["predictions"] == predictions[::-1]


def test_instances_envelope_is_accepted(runtime: object) -> None:
    body = json.dumps({"instances": TRADES[:3]})
    answer = json.loads(invoke(runtime, body, "application/json", "application/json"))
    assert len(answer["predictions"]) == 3


def test_bad_input_is_a_model_error_with_the_original_400(runtime: object) -> None:
    with pytest.raises(runtime.exceptions.ModelError) as error:  # type: ignore[attr-defined]
        invoke(runtime, json.dumps([{"s": "AAPL"}]), "application/json", "application/json")
    assert error.value.response["OriginalStatusCode"] == 400
    assert "lacks" in error.value.response["OriginalMessage"]


def test_container_contract_ping_and_invocations(server: RunningServer) -> None:
    import httpx

    assert httpx.get(f"{server.url}/ping").status_code == 200
    answer = httpx.post(
        f"{server.url}/invocations",
        content=json.dumps(TRADES[:2]),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    assert len(answer.json()["predictions"]) == 2
    bad = httpx.post(
        f"{server.url}/invocations", content="{", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400


def test_model_dir_may_be_an_extracted_package_too(tmp_path: Path) -> None:
    from ml.package import extract

    result = train(tmp_path / "m", n_trades=2000, seed=2)
    served = extract(package(result.model_dir, tmp_path / "m.tar.gz"), tmp_path / "x")
    running = start_in_thread(served)
    try:
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=running.url,
            region_name="us-east-1",
            aws_access_key_id="t",
            aws_secret_access_key="t",
        )
        answer = json.loads(invoke(client, json.dumps(TRADES), "application/json", ""))
        assert answer["model_version"] == result.model_version
    finally:
        running.stop()
