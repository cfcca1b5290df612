"""The package inside the SageMaker scikit-learn container's own serving stack.

The interpreter is set up like the ``sagemaker-scikit-learn:1.2-1`` image (its Python, 3.9, and
its pins, ``CONTAINER_PINS``), in a venv built once and cached (tests/support/venvs.py: about a
minute the first time, from PyPI). Skipped only where no Python 3.9 exists (on PATH or in pyenv's
versions). ``TRADESTREAM_SKLEARN_CONTAINER_PYTHON`` names another such interpreter instead.

The driver below does what the image's ``sagemaker_sklearn_container.serving`` does: import the
user module, wrap its four functions in sagemaker-containers' Transformer and Worker (Flask), and
POST to ``/invocations``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ml.package import extract, load_inference, package
from ml.train import train
from tests.support.venvs import VenvUnavailableError, cached_venv

# The image's Python and the pins of its serving stack that the package meets there.
CONTAINER_PINS = (
    "numpy==1.24.1",
    "scikit-learn==1.2.1",
    "joblib",
    "sagemaker-containers==2.8.6.post2",
    "protobuf==3.20.1",
    "setuptools<70",
    "jinja2==3.0.3",
    "MarkupSafe==2.1.1",
    "itsdangerous==2.0.1",
    "Werkzeug==0.15.6",
    # sagemaker-containers needs gevent; the newest has no Python 3.9 wheel and compiles for
    # minutes. The driver below never runs it (Flask's test client).
    "gevent==25.5.1",
)
T0 = 1_700_000_000_000
TRADES = [{"s": "AAPL", "p": 100 + (i % 4) / 10, "v": i % 3, "t": T0 + i * 90} for i in range(30)]

DRIVER = """
import importlib, json, os, sys
base = sys.argv[1]
os.environ["SAGEMAKER_BASE_DIR"] = base
sys.path.insert(0, os.path.join(base, "model", "code"))
from sagemaker_containers.beta.framework import transformer, worker
user = importlib.import_module("inference")
serving = transformer.Transformer(
    model_fn=user.model_fn, input_fn=user.input_fn,
    predict_fn=user.predict_fn, output_fn=user.output_fn,
)
serving.initialize()
client = worker.Worker(transform_fn=serving.transform, module_name="inference").test_client()
answers = []
for request in json.load(sys.stdin):
    headers = {"Content-Type": request["content_type"], "Accept": request["accept"]}
    response = client.post("/invocations", data=request["body"], headers=headers)
    answers.append({"status": response.status_code, "body": response.get_data(as_text=True)})
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def container_python() -> str:
    override = os.environ.get("TRADESTREAM_SKLEARN_CONTAINER_PYTHON")
    if override:
        return override
    try:
        venv = cached_venv("sagemaker-sklearn-1.2-1", "3.9", CONTAINER_PINS)
    except VenvUnavailableError as exc:
        pytest.skip(f"the scikit-learn container's serving stack needs Python 3.9: {exc}")
    return str(venv / "bin" / "python")


def in_container(python: str, base: Path, requests: list[dict[str, str]]) -> list[dict[str, Any]]:
    driver = base / "driver.py"
    driver.write_text(DRIVER)
    done = subprocess.run(
        [python, str(driver), str(base)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answers: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return answers


def test_the_package_serves_in_the_sklearn_containers_stack_as_it_does_locally(
    container_python: str, tmp_path: Path
) -> None:
    # GIVEN a package unpacked where the container unpacks it (<base>/model)
    trained = train(tmp_path / "trained", n_trades=5000, seed=3)
    artifact = package(trained.model_dir, tmp_path / "model.tar.gz")
    served = extract(artifact, tmp_path / "opt-ml" / "model")
    local = load_inference(served)
    expected = local.predict_fn(
        local.input_fn(json.dumps(TRADES), "application/json"), local.model_fn(str(served))
    )["predictions"]
    csv_body = "".join(f"{t['s']},{t['p']},{t['v']},{t['t']}\n" for t in TRADES)
    # WHEN the container's own serving stack (Python 3.9, numpy 1.24, scikit-learn 1.2) runs it
    answers = in_container(
        container_python,
        tmp_path / "opt-ml",
        [
            {"body": json.dumps(TRADES), "content_type": "application/json", "accept": "*/*"},
            {"body": csv_body, "content_type": "text/csv", "accept": "text/csv"},
            {"body": '[{"s": "AAPL"}]', "content_type": "application/json", "accept": ""},
            {"body": "[]", "content_type": "application/x-npy", "accept": ""},
            {"body": "[]", "content_type": "application/json", "accept": "application/x-npy"},
        ],
    )
    # THEN the model loads there and predicts what it predicts locally (to rounding: another
    # numpy), in every format
    as_json = json.loads(answers[0]["body"])
    assert answers[0]["status"] == 200
    assert as_json["model_version"] == trained.model_version
    assert as_json["predictions"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert [float(v) for v in answers[1]["body"].split()] == as_json["predictions"]
    # AND bad input gets the same 4xx and message as from the local server, not a bare 500
    assert [a["status"] for a in answers[2:]] == [400, 415, 406]
    assert json.loads(answers[2]["body"])["message"].startswith("trade 0 lacks p, v, t")
