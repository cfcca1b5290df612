"""SageMaker scikit-learn serving functions: model_fn, input_fn, predict_fn, output_fn.

Shipped as ``code/inference.py`` in model.tar.gz beside ``code/features.py`` and run by the
SageMaker scikit-learn container (``SAGEMAKER_PROGRAM=inference.py``) and, the very same file, by
the local model server. The oldest targeted image (1.2-1) has Python 3.9, numpy 1.24 and
scikit-learn 1.2, so this file imports only the standard library, numpy and joblib, and keeps to
Python 3.9 syntax.

Requests (``Content-Type``):

- ``application/json``: an array of trades, ``{"instances": [...]}``, or one trade object;
- ``application/jsonlines`` (also ``application/x-jsonlines``, ``application/jsonl``,
  ``application/x-ndjson``): one trade object per line;
- ``text/csv``: one trade per row, columns ``s,p,v,t`` then optionally ``id``; a first row that
  names the columns is skipped. Quote symbols that hold commas.

A trade is Finnhub's ``s, p, v, t`` (``c``, ``id``, ``rt`` and any other field are ignored, except
that ``id`` marks re-sends, see features.py). Responses (``Accept``), one prediction per trade in
input order: ``application/json`` (the default, also for ``*/*``)
``{"predictions": [...], "model_version": "..."}``; ``application/jsonlines``
``{"prediction": x, "model_version": "..."}`` per line; ``text/csv`` one number per line.

Bad input raises InferenceError subclasses carrying an HTTP status (400, 406, 415), which the
local server answers with ``{"error", "message"}``. Inside the SageMaker container the error is
answered the same way through the container's own response class (see ``Rejected``). The runtime
API then answers ModelError with that status as ``OriginalStatusCode``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import math
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np

MODEL_FORMAT = "tradestream.standardized-linear/1"
CSV_COLUMNS = ("s", "p", "v", "t", "id")  # the first four are required
REQUIRED_FIELDS = ("s", "p", "v", "t")
JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
JSONLINES_ALIASES = (
    JSONLINES,
    "application/x-jsonlines",
    "application/jsonl",
    "application/x-ndjson",
)
# Trade times outside 2000..2100 are unit errors (seconds, microseconds), as tradestream.trade says.
MIN_EPOCH_MS = 946_684_800_000
MAX_EPOCH_MS = 4_102_444_800_000


class InferenceError(ValueError):
    """A request the model cannot serve; ``status_code`` is the HTTP answer the server gives."""

    status_code = 400


class InputError(InferenceError):
    """The body is not trades the model can take."""


class UnsupportedContentTypeError(InferenceError):
    status_code = 415


class NotAcceptableError(InferenceError):
    status_code = 406


def _load_sibling(name: str) -> ModuleType:
    """Import ``name``.py from this file's directory under a private module name.

    By path, not through sys.path: the feature code that scores a request is then always the copy
    shipped next to this file, never a same-named module found elsewhere.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    digest = hashlib.sha256(path.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_tradestream_{name}_{digest}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # the repository's module; at run time the copy beside this file
    from ml import features as features
else:
    features = _load_sibling("features")


def feature_code_digest() -> str:
    """SHA-256 of the feature code this file uses; training records it in metadata.json."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "features.py")
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def model_fn(model_dir: str) -> dict[str, Any]:
    """Load the model and refuse one whose features differ from the code shipped beside it."""
    with open(os.path.join(model_dir, "metadata.json"), encoding="utf-8") as handle:
        metadata = json.load(handle)
    params = joblib.load(os.path.join(model_dir, "model.joblib"))
    if not isinstance(params, dict) or params.get("format") != MODEL_FORMAT:
        raise RuntimeError(f"model.joblib is not a {MODEL_FORMAT} model; retrain it")
    if tuple(params["features"]) != tuple(features.FEATURE_NAMES):
        raise RuntimeError("the model was trained on other features than this code computes")
    expected = metadata.get("feature_code_sha256")
    if expected != feature_code_digest():
        raise RuntimeError(
            "features.py differs from the feature code the model was trained with; "
            "retrain and package again"
        )
    return {
        "mean": np.asarray(params["mean"], dtype=np.float64),
        "scale": np.asarray(params["scale"], dtype=np.float64),
        "coef": np.asarray(params["coef"], dtype=np.float64),
        "intercept": float(params["intercept"]),
        "model_version": str(metadata["model_version"]),
    }


def input_fn(body: bytes | str, content_type: str) -> Any:
    """The request's trades, validated, in input order (a Rejected in the container, see
    ``Rejected``)."""
    try:
        return parse_trades(body, content_type)
    except InferenceError as error:
        if _container_worker() is None:
            raise
        return Rejected(error)


def parse_trades(body: bytes | str, content_type: str) -> list[dict[str, Any]]:
    """The request's trades, validated, in input order; InferenceError if they are not."""
    kind = _media_type(content_type) or JSON
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError as exc:
        raise InputError(f"the body is not UTF-8: {exc}") from None
    if kind == JSON:
        trades = _from_json(text)
    elif kind in JSONLINES_ALIASES:
        trades = _from_jsonlines(text)
    elif kind == CSV:
        trades = _from_csv(text)
    else:
        raise UnsupportedContentTypeError(
            f"content type {content_type!r} is not supported; send {JSON}, {JSONLINES} or {CSV}"
        )
    for index, trade in enumerate(trades):
        _check_trade(index, trade)
    return trades


def predict_fn(trades: Any, model: dict[str, Any]) -> Any:
    """One prediction per trade, from one vectorised pass over the whole request."""
    if isinstance(trades, Rejected):
        return trades
    predictions = predict_rows(model, features.compute_features(trades))
    return {"predictions": [float(p) for p in predictions], "model_version": model["model_version"]}


def predict_rows(model: dict[str, Any], rows: np.ndarray) -> np.ndarray:
    """The standardised linear model: scikit-learn's StandardScaler then Ridge, to rounding.

    Row by row, not a matrix product: BLAS kernels round a row differently depending on where
    it sits in the matrix, and a trade must score the same wherever it is in a request.
    """
    if len(rows) == 0:
        return np.zeros(0)
    scaled = (rows - model["mean"]) / model["scale"]
    result: np.ndarray = np.sum(scaled * model["coef"], axis=1) + model["intercept"]
    return result


def output_fn(prediction: Any, accept: str) -> Any:
    """The response body and its content type (a Response with the error's status for a
    refused request in the container)."""
    if isinstance(prediction, Rejected):
        return _error_response(prediction.error)
    try:
        return format_predictions(prediction, accept)
    except InferenceError as error:
        if _container_worker() is None:
            raise
        return _error_response(error)


def format_predictions(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    """The response body and its content type; NotAcceptableError for an unknown Accept."""
    kind = _media_type(accept)
    values = prediction["predictions"]
    if kind in ("", "*/*", "application/*", JSON):
        return json.dumps(prediction, allow_nan=False), JSON
    if kind in JSONLINES_ALIASES:
        # repr() of a finite float is valid JSON; one template beats 1,000 json.dumps calls.
        tail = ', "model_version": ' + json.dumps(prediction["model_version"]) + "}\n"
        return "".join('{"prediction": ' + _json_number(v) + tail for v in values), kind
    if kind == CSV:
        return "".join(_json_number(v) + "\n" for v in values), CSV
    raise NotAcceptableError(
        f"accept {accept!r} is not supported; ask for {JSON}, {JSONLINES} or {CSV}"
    )


class Rejected:
    """A refused request on its way from input_fn to output_fn, inside the SageMaker container.

    There, sagemaker-containers answers any exception raised by these functions with a bare
    HTTP 500, so a client could not tell bad input from a broken model. Handing the error on
    lets output_fn answer it with its own status (400, 406, 415) and a JSON message, as the
    local server does. Outside the container, errors are simply raised.
    """

    def __init__(self, error: InferenceError) -> None:
        self.error = error


def _container_worker() -> Any:
    # The serving stack of the SageMaker scikit-learn container, already imported there.
    return sys.modules.get("sagemaker_containers._worker")


def _error_response(error: InferenceError) -> Any:
    body = json.dumps({"error": type(error).__name__, "message": str(error)})
    worker = _container_worker()
    if worker is None:
        raise error
    return worker.Response(response=body, status=error.status_code, mimetype=JSON)


def _media_type(header: str | None) -> str:
    # The first of a comma-separated list, without parameters such as "; charset=utf-8".
    return (header or "").split(",")[0].split(";")[0].strip().lower()


def _from_json(text: str) -> list[Any]:
    parsed = _json_value(text, "the body")
    if isinstance(parsed, dict) and "instances" in parsed:
        parsed = parsed["instances"]
    elif isinstance(parsed, dict):
        parsed = [parsed]  # one trade
    if not isinstance(parsed, list):
        raise InputError('expected a JSON array of trades or {"instances": [...]}')
    return parsed


def _json_value(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{where} is not valid JSON: {exc}") from None


def _from_jsonlines(text: str) -> list[Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    try:  # one parse for the whole body; line by line only to say which line is bad
        parsed: list[Any] = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        parsed = [_json_value(line, f"line {n}") for n, line in enumerate(lines, 1)]
        raise InputError("a line holds more than one JSON value") from None
    if len(parsed) != len(lines):
        raise InputError("a line holds more than one JSON value")
    return parsed


def _json_number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"prediction {value!r} is not a finite number")
    return repr(float(value))


def _from_csv(text: str) -> list[dict[str, Any]]:
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if rows and [cell.strip().lower() for cell in rows[0][:4]] == list(REQUIRED_FIELDS):
        rows = rows[1:]  # a header
    trades = []
    for index, row in enumerate(rows):
        if len(row) < len(REQUIRED_FIELDS):
            columns = ",".join(CSV_COLUMNS)
            raise InputError(f"CSV row {index} has {len(row)} columns; send {columns}")
        trade: dict[str, Any] = {"s": row[0].strip(), "p": row[1], "v": row[2], "t": row[3]}
        if len(row) > 4 and row[4].strip():
            trade["id"] = row[4].strip()
        trades.append(trade)
    return trades


def _check_trade(index: int, trade: Any) -> None:
    """Validate and normalise one trade in place: p, v floats, t int milliseconds."""
    if not isinstance(trade, dict):
        raise InputError(f"trade {index} is not an object")
    missing = [name for name in REQUIRED_FIELDS if name not in trade]
    if missing:
        raise InputError(f"trade {index} lacks {', '.join(missing)} (needs s, p, v, t)")
    if not isinstance(trade["s"], str) or not trade["s"].strip():
        raise InputError(f"trade {index}: s must be a non-empty symbol")
    price = _number(index, "p", trade["p"])
    volume = _number(index, "v", trade["v"])
    if price <= 0:
        raise InputError(f"trade {index}: p must be > 0")
    if volume < 0:
        raise InputError(f"trade {index}: v must be >= 0")
    when = _number(index, "t", trade["t"])
    if when != int(when) or not MIN_EPOCH_MS <= when <= MAX_EPOCH_MS:
        raise InputError(f"trade {index}: t must be epoch milliseconds (an integer)")
    trade["p"], trade["v"], trade["t"] = price, volume, int(when)


def _number(index: int, name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InputError(f"trade {index}: {name} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"trade {index}: {name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"trade {index}: {name} must be finite")
    return number
