"""The shipped serving functions: request formats, validation, response formats, portability."""

from __future__ import annotations

import ast
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml import inference
from ml.inference import (
    InputError,
    NotAcceptableError,
    UnsupportedContentTypeError,
    input_fn,
    output_fn,
)

T0 = 1_700_000_000_000
TRADES = [
    {"s": "AAPL", "p": 100.5, "v": 10.0, "t": T0, "c": ["1"], "id": "a", "rt": T0 + 3},
    {"s": "BINANCE:BTCUSDT", "p": 65000.0, "v": 0.0, "t": T0 + 7},
]
ML = Path(__file__).parents[2] / "ml"
CSV_WITH_HEADER = "s,p,v,t,id\nAAPL,100.5,10,1700000000000,a\nBINANCE:BTCUSDT,65000,0,1700000000007"


def one(**fields: Any) -> str:
    """A JSON request of one trade, valid but for ``fields``."""
    return json.dumps([{"s": "AAPL", "p": 1.0, "v": 1.0, "t": T0, **fields}])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps(TRADES), "application/json"),
        (json.dumps({"instances": TRADES}), "application/json; charset=utf-8"),
        ("\n".join(json.dumps(t) for t in TRADES) + "\n", "application/jsonlines"),
        ("\n\n".join(json.dumps(t) for t in TRADES), "application/x-ndjson"),
        ("AAPL,100.5,10,1700000000000,a\nBINANCE:BTCUSDT,65000,0,1700000000007\n", "text/csv"),
        (CSV_WITH_HEADER, "text/csv"),
    ],
)
def test_every_format_gives_the_same_trades(body: str, content_type: str) -> None:
    # WHEN the same two trades arrive in each supported format (as bytes, as SageMaker sends)
    trades = input_fn(body.encode(), content_type)
    # THEN the model sees the same s, p, v, t, in input order
    assert [(t["s"], t["p"], t["v"], t["t"]) for t in trades] == [
        ("AAPL", 100.5, 10.0, T0),
        ("BINANCE:BTCUSDT", 65000.0, 0.0, T0 + 7),
    ]


def test_one_trade_object_is_a_request_of_one() -> None:
    assert len(input_fn(json.dumps(TRADES[0]), "application/json")) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "error", "says"),
    [
        ("{", "application/json", InputError, "not valid JSON"),
        ('"x"', "application/json", InputError, "JSON array"),
        ('[{"s": "AAPL"}]', "application/json", InputError, "lacks p, v, t"),
        (one(p=-1), "application/json", InputError, "p must be > 0"),
        (one(v=True), "application/json", InputError, "v must be a number"),
        (one(v=float("inf")), "application/json", InputError, "v must be finite"),
        (one(t=T0 // 1000), "application/json", InputError, "epoch milliseconds"),
        (one(t=T0 + 0.5), "application/json", InputError, "epoch milliseconds"),
        (one(s=""), "application/json", InputError, "symbol"),
        ("[1]", "application/json", InputError, "not an object"),
        ("AAPL,1\n", "text/csv", InputError, "columns"),
        ("AAPL,abc,1,1700000000000\n", "text/csv", InputError, "p must be a number"),
        ('{"s": "AAPL"}\nnot json\n', "application/jsonlines", InputError, "line 2"),
        ("\x00", "application/x-npy", UnsupportedContentTypeError, "not supported"),
    ],
)
def test_bad_input_is_refused_with_a_status_and_a_reason(
    body: str, content_type: str, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says) as raised:
        input_fn(body, content_type)
    assert raised.value.status_code in (400, 415)  # type: ignore[attr-defined]


def test_responses_in_every_format_carry_the_same_numbers_in_order() -> None:
    prediction: dict[str, Any] = {"predictions": [0.1, -2.5e-05, 0.0], "model_version": "ridge-x"}
    body, mime = output_fn(prediction, "application/json")
    assert (json.loads(body), mime) == (prediction, "application/json")
    assert output_fn(prediction, "*/*")[1] == "application/json"
    assert output_fn(prediction, "")[1] == "application/json"
    lines, mime = output_fn(prediction, "application/jsonlines")
    assert mime == "application/jsonlines"
    assert [json.loads(line) for line in lines.splitlines()] == [
        {"prediction": p, "model_version": "ridge-x"} for p in prediction["predictions"]
    ]
    csv_body, mime = output_fn(prediction, "text/csv")
    assert mime == "text/csv"
    assert [float(v) for v in csv_body.splitlines()] == prediction["predictions"]
    with pytest.raises(NotAcceptableError):
        output_fn(prediction, "application/x-npy")


@pytest.mark.parametrize("name", ["inference.py", "features.py"])
def test_shipped_code_runs_in_the_oldest_sagemaker_sklearn_image(name: str) -> None:
    # GIVEN a file copied into the package: the 1.2-1 image has Python 3.9, numpy, joblib
    source = (ML / name).read_text()
    # THEN it parses as Python 3.9 and imports nothing but the standard library, numpy and
    # joblib (the repository's own modules only for type checking)
    tree = ast.parse(source, feature_version=(3, 9))
    allowed = set(sys.stdlib_module_names) | {"numpy", "joblib", "__future__"}
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    type_checking_only = {"ml"}
    assert imported - type_checking_only <= allowed, imported - allowed
    # AND no construct of Python 3.10+ that parsing alone lets through
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Match)
        if isinstance(node, ast.Call):
            assert "strict" not in {keyword.arg for keyword in node.keywords}
    assert "from __future__ import annotations" in source  # annotations stay unevaluated


def test_the_repository_copy_uses_the_feature_module_beside_it() -> None:
    assert inference.features.__file__ == str(ML / "features.py")


class FakeContainerResponse:
    """Stands in for sagemaker_containers' Flask Response: status, body, mimetype."""

    def __init__(self, response: str, status: int, mimetype: str) -> None:
        self.response, self.status, self.mimetype = response, status, mimetype


def test_inside_the_container_a_refusal_is_answered_with_its_status_not_a_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the SageMaker container's serving stack is loaded (it turns exceptions into 500s)
    worker = types.ModuleType("sagemaker_containers._worker")
    worker.Response = FakeContainerResponse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sagemaker_containers._worker", worker)
    # WHEN bad input goes through input_fn, predict_fn and output_fn as the container calls them
    refused = input_fn('[{"s": "AAPL"}]', "application/json")
    response = output_fn(inference.predict_fn(refused, {}), "application/json")
    # THEN the response carries the 400 and the reason, as the local server answers
    assert (response.status, response.mimetype) == (400, "application/json")
    assert json.loads(response.response) == {
        "error": "InputError",
        "message": "trade 0 lacks p, v, t (needs s, p, v, t)",
    }
    # AND an unsupported Accept is a 406 the same way
    prediction = {"predictions": [0.0], "model_version": "v"}
    assert output_fn(prediction, "application/x-npy").status == 406


def test_a_trade_scores_the_same_wherever_it_sits_in_a_request() -> None:
    # GIVEN a model and many feature rows
    rng = np.random.default_rng(0)
    model = {
        "mean": rng.normal(size=8),
        "scale": rng.uniform(0.5, 2, size=8),
        "coef": rng.normal(size=8),
        "intercept": 0.1,
    }
    rows = rng.normal(size=(1001, 8))
    # WHEN each row is scored alone and inside the batch
    batch = inference.predict_rows(model, rows)
    alone = [inference.predict_rows(model, rows[i : i + 1])[0] for i in range(len(rows))]
    # THEN the numbers are identical, bit for bit
    assert batch.tolist() == alone
