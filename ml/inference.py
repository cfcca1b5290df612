"""SageMaker scikit-learn serving functions: model_fn, input_fn, predict_fn, output_fn.

Shipped as ``code/inference.py`` in model.tar.gz next to ``code/features.py``; runs inside the
SageMaker scikit-learn container (standard library, numpy, scikit-learn, joblib only) and, the
same file, inside the local model server. Accepts ``application/json`` (an array of trades or
``{"instances": [...]}``), ``application/jsonlines`` (one trade per line) and ``text/csv``
(columns ``s,p,v,t`` without a header). Answers ``{"predictions": [...], "model_version": ...}``
with one prediction per trade, in input order.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

import joblib

try:  # inside the package: code/ is on sys.path
    from features import compute_features  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # inside the repository
    from ml.features import compute_features

CSV_COLUMNS = ("s", "p", "v", "t")
JSON_TYPES = ("application/json",)
JSONLINES_TYPES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")


class InputError(ValueError):
    """Input the model cannot take; the server answers it as a client error (4xx)."""


def model_fn(model_dir: str) -> dict[str, Any]:
    with open(os.path.join(model_dir, "metadata.json")) as handle:
        metadata = json.load(handle)
    return {"model": joblib.load(os.path.join(model_dir, "model.joblib")), "metadata": metadata}


def input_fn(body: bytes | str, content_type: str) -> list[dict[str, Any]]:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind in JSON_TYPES:
            parsed = json.loads(text)
            trades = parsed.get("instances") if isinstance(parsed, dict) else parsed
        elif kind in JSONLINES_TYPES:
            trades = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif kind == "text/csv":
            rows = [row for row in csv.reader(io.StringIO(text)) if row]
            trades = [_csv_trade(row) for row in rows]
        else:
            raise InputError(f"unsupported content type {content_type!r}")
    except (ValueError, KeyError) as exc:
        raise InputError(f"cannot parse {kind} body: {exc}") from exc
    if not isinstance(trades, list) or not all(isinstance(t, dict) for t in trades):
        raise InputError("expected a list of trade objects")
    for index, trade in enumerate(trades):
        missing = [k for k in ("s", "p", "v", "t") if k not in trade]
        if missing:
            raise InputError(f"trade {index} lacks {', '.join(missing)}")
        try:
            if float(trade["p"]) <= 0 or float(trade["v"]) < 0:
                raise InputError(f"trade {index}: p must be > 0 and v >= 0")
            int(trade["t"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"trade {index}: {exc}") from exc
    return trades


def predict_fn(trades: list[dict[str, Any]], model: dict[str, Any]) -> dict[str, Any]:
    # One vectorised call for the whole request.
    predictions = model["model"].predict(compute_features(trades)) if trades else []
    return {
        "predictions": [float(p) for p in predictions],
        "model_version": model["metadata"]["model_version"],
    }


def output_fn(prediction: dict[str, Any], accept: str) -> tuple[str, str]:
    kind = (accept or "application/json").split(";")[0].strip().lower()
    if kind in JSONLINES_TYPES:
        lines = [json.dumps({"prediction": p}) for p in prediction["predictions"]]
        return "\n".join(lines) + "\n", "application/jsonlines"
    if kind == "text/csv":
        return "\n".join(repr(p) for p in prediction["predictions"]) + "\n", "text/csv"
    return json.dumps(prediction), "application/json"


def _csv_trade(row: list[str]) -> dict[str, Any]:
    if len(row) < len(CSV_COLUMNS):
        raise InputError(f"a CSV row needs the columns {','.join(CSV_COLUMNS)}")
    return {"s": row[0], "p": float(row[1]), "v": float(row[2]), "t": int(float(row[3]))}
