"""The local model server over real HTTP: an unmodified boto3 sagemaker-runtime client works,
and so does the container contract (GET /ping, POST /invocations)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from ml.package import PackageError, extract, package
from ml.serve import RunningServer, start_in_thread
from ml.train import TrainResult, train
from tests.support.prometheus import samples
from tradestream.limits import SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES

T0 = 1_700_000_000_000
# Two symbols interleaved, price-only updates (v=0) and, last, a re-send of the fourth trade.
TRADES: list[dict[str, Any]] = [
    {"s": "AAPL", "p": 100 + (i % 5) / 10, "v": (i % 3) * 10, "t": T0 + i * 125, "id": f"a{i}"}
    for i in range(40)
] + [{"s": "MSFT", "p": 300 - i / 10, "v": 5, "t": T0 + i * 300, "id": f"m{i}"} for i in range(20)]
TRADES.append(dict(TRADES[3]))


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Unpacked packages go to a cache; keep this module's out of the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(tmp_path_factory.mktemp("model") / "model", n_trades=5000, seed=1)


@pytest.fixture(scope="module")
def server(
    trained: TrainResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    artifact = package(trained.model_dir, tmp_path_factory.mktemp("artifact") / "model.tar.gz")
    with start_in_thread(artifact) as running:
        yield running


@pytest.fixture
def runtime(server: RunningServer) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def invoke(runtime: Any, body: str | bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    answer = runtime.invoke_endpoint(
        EndpointName="tradestream-model", ContentType=content_type, Accept=accept, Body=body
    )
    return answer["Body"].read(), answer["ContentType"]


def test_json_jsonlines_and_csv_give_the_same_predictions_in_input_order(runtime: Any) -> None:
    # GIVEN the same trades as a JSON array, as JSON lines and as CSV
    jsonlines = "".join(json.dumps(t) + "\n" for t in TRADES)
    csv_body = "".join(f"{t['s']},{t['p']},{t['v']},{t['t']},{t['id']}\n" for t in TRADES)
    # WHEN each is sent through boto3, asking for the same format back
    as_json, json_type = invoke(runtime, json.dumps(TRADES), "application/json", "application/json")
    as_lines, lines_type = invoke(
        runtime, jsonlines, "application/jsonlines", "application/jsonlines"
    )
    as_csv, csv_type = invoke(runtime, csv_body, "text/csv", "text/csv")
    # THEN there is one prediction per trade, the same numbers in the three formats
    answer = json.loads(as_json)
    predictions = answer["predictions"]
    assert len(predictions) == len(TRADES)
    assert answer["model_version"].startswith("ridge-")
    assert [json.loads(line)["prediction"] for line in as_lines.splitlines()] == predictions
    assert [float(v) for v in as_csv.decode().split()] == predictions
    assert (json_type, lines_type, csv_type) == (
        "application/json",
        "application/jsonlines",
        "text/csv",
    )
    # AND in input order: the trades reversed give the predictions reversed
    reverse, _ = invoke(runtime, json.dumps(TRADES[::-1]), "application/json", "application/json")
    assert json.loads(reverse)["predictions"] == predictions[::-1]
    # AND the re-sent trade gets its original's prediction
    assert predictions[-1] == predictions[3]


def test_the_served_predictions_are_the_trained_models(runtime: Any, trained: TrainResult) -> None:
    # an envelope, an empty request and the default Accept all answer as the contract says
    body, mime = invoke(runtime, json.dumps({"instances": TRADES[:3]}), "application/json", "*/*")
    assert mime == "application/json"
    assert json.loads(body)["model_version"] == trained.model_version
    assert len(json.loads(body)["predictions"]) == 3
    empty, _ = invoke(runtime, "[]", "application/json", "application/json")
    assert json.loads(empty)["predictions"] == []


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "says"),
    [
        (json.dumps([{"s": "AAPL"}]), "application/json", "application/json", 400, "lacks p, v, t"),
        ("not json", "application/json", "application/json", 400, "not valid JSON"),
        ("AAPL,abc,1,1700000000000", "text/csv", "text/csv", 400, "p must be a number"),
        ("[]", "application/x-npy", "application/json", 415, "not supported"),
        ("[]", "application/json", "application/x-npy", 406, "not supported"),
    ],
)
def test_bad_input_is_a_model_error_carrying_the_containers_4xx(
    runtime: Any, body: str, content_type: str, accept: str, status: int, says: str
) -> None:
    # WHEN the model refuses the request THEN boto3 raises ModelError (HTTP 424) as SageMaker's
    # runtime does, with the container's status and message inside
    with pytest.raises(runtime.exceptions.ModelError) as error:
        invoke(runtime, body, content_type, accept)
    response = error.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == status
    assert says in response["OriginalMessage"]
    assert f"Received client error ({status})" in response["Error"]["Message"]


def test_an_oversize_body_and_a_bad_endpoint_name_are_validation_errors(runtime: Any) -> None:
    with pytest.raises(runtime.exceptions.ValidationError, match="oversize body"):
        invoke(
            runtime,
            b" " * (SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES + 1),
            "application/json",
            "application/json",
        )
    with pytest.raises(runtime.exceptions.ValidationError, match="not valid"):
        runtime.invoke_endpoint(EndpointName="bad_name", ContentType="application/json", Body="[]")


def test_container_contract_ping_and_invocations(server: RunningServer) -> None:
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
    assert bad.json()["error"] == "InputError"


def test_an_extracted_package_serves_the_same_model(trained: TrainResult, tmp_path: Path) -> None:
    served = extract(package(trained.model_dir, tmp_path / "m.tar.gz"), tmp_path / "x")
    with start_in_thread(served) as running:
        assert running.model_version == trained.model_version
        answer = httpx.post(f"{running.url}/invocations", json=TRADES[:1])
        assert answer.json()["model_version"] == trained.model_version


def test_a_training_output_directory_is_served_as_its_package(trained: TrainResult) -> None:
    with start_in_thread(trained.model_dir) as running:
        assert running.model_version == trained.model_version
        assert httpx.get(f"{running.url}/ping").status_code == 200


def test_a_directory_that_is_not_a_model_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="trained model directory"):
        start_in_thread(tmp_path)


def test_a_server_in_a_thread_leaves_the_process_logging_alone(trained: TrainResult) -> None:
    # GIVEN a logger the host process disabled (as the tests' fake Finnhub server's is)
    disabled = logging.getLogger(f"tests.host-disabled-{id(trained)}")
    disabled.disabled = True
    # WHEN the model server starts in a thread of that process
    with start_in_thread(trained.model_dir):
        # THEN the process's logging configuration is left as it was
        assert disabled.disabled


def test_metrics_count_every_invocation_of_both_paths(trained: TrainResult) -> None:
    # GIVEN a fresh server (its metrics start at zero) and an unmodified boto3 client
    with start_in_thread(trained.model_dir) as running:
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=running.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}),
        )
        before = samples(httpx.get(f"{running.url}/metrics").text)
        # WHEN it answers 4 good requests through boto3 and one on the container path...
        invoke(client, json.dumps(TRADES), "application/json", "application/json")
        lines = "".join(json.dumps(t) + "\n" for t in TRADES[:10])
        invoke(client, lines, "application/jsonlines", "application/jsonlines")
        invoke(client, "[]", "application/json", "application/json")
        csv_body = "".join(f"{t['s']},{t['p']},{t['v']},{t['t']}\n" for t in TRADES[:5])
        invoke(client, csv_body, "text/csv", "text/csv")
        assert httpx.post(f"{running.url}/invocations", json=TRADES[:2]).status_code == 200
        # ... and refuses bad input, an unsupported type, an oversize body, a bad endpoint name
        with pytest.raises(client.exceptions.ModelError):
            invoke(client, "not json", "application/json", "application/json")
        with pytest.raises(client.exceptions.ModelError):
            invoke(client, "[]", "application/x-npy", "application/json")
        with pytest.raises(client.exceptions.ValidationError):
            invoke(client, b" " * (SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES + 1), "text/csv", "text/csv")
        with pytest.raises(client.exceptions.ValidationError):
            client.invoke_endpoint(EndpointName="bad_name", ContentType="text/csv", Body="")
        scraped = httpx.get(f"{running.url}/metrics")
    # THEN the scrape counts each call by the model's status, and the rows it predicted
    assert scraped.headers["content-type"].startswith("text/plain")
    after = samples(scraped.text)
    assert before['model_loaded{model_version="' + trained.model_version + '"}'] == 1
    assert not any(name.startswith("model_invocations_total") for name in before)
    by_status = {
        name.split('"')[1]: value
        for name, value in after.items()
        if name.startswith("model_invocations_total{")
    }
    assert by_status == {"200": 5, "400": 1, "413": 1, "415": 1}
    assert after["model_rows_predicted_total"] == len(TRADES) + 10 + 0 + 5 + 2
    assert after["model_invocation_duration_seconds_count"] == 8
    assert after['model_loaded{model_version="' + trained.model_version + '"}'] == 1
