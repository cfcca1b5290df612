"""Train, evaluate on a time-based holdout against naive baselines, write the model and its card.

Reproducible: the same history, seed and horizon give the same windows, model, version and
metrics (scikit-learn's Ridge is deterministic; every random draw here is seeded).

History is cut into request-sized windows (sizes drawn log-uniformly between 20 and 2,000
trades, like the Firehose batches the endpoint gets) and ``features.compute_features`` runs per
window, exactly as the endpoint runs it per request. Labels come from the whole history (a
point-in-time forward join, see labels.py). The holdout is the last 20% of trade time; training
rows whose label horizon reaches into it are purged, so no holdout price leaks into training.

Also the entry point of a SageMaker training job (``sagemaker_train.py``), so everything this
module imports runs in the SageMaker scikit-learn container (1.2-1: Python 3.9, numpy 1.24,
scikit-learn 1.2) and keeps to Python 3.9 at run time; core (``tradestream``) is not there.

Output directory: ``model.joblib`` (the model as plain numbers, see inference.py),
``metadata.json`` (the model version inside the artifact), ``metrics.json``, ``model-card.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ml import inference
from ml.card import model_card
from ml.evaluate import evaluate, verdict
from ml.features import FEATURE_NAMES, compute_features
from ml.labels import forward_log_returns

DEFAULT_TRADES = 200_000  # about 20 minutes of the synthetic market; trains in a few seconds
DEFAULT_SEED = 7
DEFAULT_HORIZON_S = 0.25
HOLDOUT = 0.2
RIDGE_ALPHA = 1.0
WINDOW_MIN, WINDOW_MAX = 20, 2000
MIN_TRAIN_ROWS, MIN_HOLDOUT_ROWS = 200, 50

__all__ = ["TrainResult", "TrainingDataError", "model_card", "train"]


class TrainingDataError(ValueError):
    """Too little usable history to train and evaluate; the message says how much is needed."""


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    model_version: str
    metrics: dict[str, Any]
    metadata: dict[str, Any]


def train(
    out_dir: Path,
    *,
    trades: Sequence[Mapping[str, Any]] | None = None,
    n_trades: int = DEFAULT_TRADES,
    seed: int = DEFAULT_SEED,
    horizon_s: float = DEFAULT_HORIZON_S,
    source: str | None = None,
) -> TrainResult:
    """Train on ``trades`` (e.g. ``data.lake_history``) or, if None, on ``n_trades`` trades of the
    synthetic market of ``seed``; write the model to ``out_dir``. ``source`` names the data in
    the metadata and the card (default: "synthetic" or "provided")."""
    history: list[Mapping[str, Any]] = []
    if trades is None:
        # Imported here: the synthetic market is core's (tradestream), which a SageMaker training
        # job does not carry; a job always passes the trades it read from its channel.
        from ml.data import synthetic_history

        history.extend(synthetic_history(n_trades, seed))
    else:
        history.extend(trades)
    described = source or ("synthetic" if trades is None else "provided")
    x = features_in_windows(history, request_windows(len(history), seed))
    y = forward_log_returns(history, horizon_s)
    times = np.array([int(trade["t"]) for trade in history], dtype=np.int64)
    symbols = np.array([str(trade["s"]) for trade in history])
    fit_rows, holdout_rows = time_split(times, y, horizon_s)

    pipeline = make_pipeline(StandardScaler(), Ridge(alpha=RIDGE_ALPHA))
    pipeline.fit(x[fit_rows], y[fit_rows])
    params = export(pipeline)
    predicted = inference.predict_rows(_loaded(params), x[holdout_rows])
    # The served model is the exported numbers: they must score as the estimator does.
    if not np.allclose(predicted, pipeline.predict(x[holdout_rows]), rtol=1e-9, atol=1e-15):
        raise RuntimeError("the exported model does not reproduce the estimator's predictions")

    metrics = evaluate(
        y[holdout_rows],
        predicted,
        times_ms=times[holdout_rows],
        symbols=symbols[holdout_rows],
        train_mean=float(np.mean(y[fit_rows])),
        seed=seed,
    )
    metrics = {"train_rows": int(fit_rows.size), **metrics, "verdict": verdict(metrics)}
    # Not zip(strict=True): this runs in the SageMaker scikit-learn container's Python 3.9 too.
    coef = params["coef"]
    metrics["coefficients_standardized"] = {n: coef[i] for i, n in enumerate(FEATURE_NAMES)}
    metadata = _metadata(params, described, history, seed, horizon_s, times, holdout_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(params, out_dir / "model.joblib")
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    result = TrainResult(out_dir, metadata["model_version"], metrics, metadata)
    (out_dir / "model-card.md").write_text(model_card(result))
    return result


def request_windows(n_rows: int, seed: int) -> list[slice]:
    """Consecutive windows covering ``n_rows`` rows, sized like the requests the endpoint gets."""
    rng = np.random.default_rng(seed)
    windows, start = [], 0
    while start < n_rows:
        size = int(np.exp(rng.uniform(np.log(WINDOW_MIN), np.log(WINDOW_MAX))))
        windows.append(slice(start, min(start + size, n_rows)))
        start += size
    return windows


def features_in_windows(
    trades: Sequence[Mapping[str, Any]], windows: Sequence[slice] | None = None
) -> np.ndarray:
    """Features of every trade, each computed within its window as the endpoint would."""
    cuts = windows if windows is not None else [slice(0, len(trades))]
    parts = [compute_features(trades[window]) for window in cuts]
    return np.vstack(parts) if parts else np.zeros((0, len(FEATURE_NAMES)))


def time_split(times: np.ndarray, y: np.ndarray, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indexes to fit on and to evaluate on: the holdout is the last HOLDOUT of labelled
    trade time; fit rows end one horizon before it, so their labels never see holdout prices."""
    labelled = np.flatnonzero(~np.isnan(y))
    if labelled.size == 0:
        raise TrainingDataError("no trade has a later trade of its symbol within the horizon")
    cut = np.quantile(times[labelled], 1 - HOLDOUT, method="lower")
    holdout = labelled[times[labelled] >= cut]
    fit = labelled[times[labelled] + round(horizon_s * 1000) < cut]
    if fit.size < MIN_TRAIN_ROWS or holdout.size < MIN_HOLDOUT_ROWS:
        raise TrainingDataError(
            f"{fit.size} training and {holdout.size} holdout rows; need at least "
            f"{MIN_TRAIN_ROWS} and {MIN_HOLDOUT_ROWS}: give more history or a shorter horizon"
        )
    return fit, holdout


def export(pipeline: Pipeline) -> dict[str, Any]:
    """The fitted pipeline as plain Python numbers: a pickle of these loads under any Python 3,
    numpy and scikit-learn, unlike a scikit-learn 1.x / numpy 2 estimator pickle, which the
    SageMaker scikit-learn images (numpy 1.24 in 1.2-1) cannot load."""
    scaler, ridge = pipeline[0], pipeline[-1]
    return {
        "format": inference.MODEL_FORMAT,
        "features": list(FEATURE_NAMES),
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "coef": [float(v) for v in ridge.coef_],
        "intercept": float(ridge.intercept_),
    }


def _loaded(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "mean": np.asarray(params["mean"]),
        "scale": np.asarray(params["scale"]),
        "coef": np.asarray(params["coef"]),
        "intercept": params["intercept"],
    }


def _metadata(
    params: dict[str, Any],
    source: str,
    history: Sequence[Mapping[str, Any]],
    seed: int,
    horizon_s: float,
    times: np.ndarray,
    holdout_rows: np.ndarray,
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "algorithm": "StandardScaler + Ridge (scikit-learn), exported as plain numbers",
        "features": list(FEATURE_NAMES),
        "feature_code_sha256": inference.feature_code_digest(),
        "target": f"log return of the symbol over the next {horizon_s:g} s (as-of forward join)",
        "horizon_s": horizon_s,
        "training": {
            "source": source,
            "trades": len(history),
            "seed": seed,
            "first_trade_ms": int(times.min()) if times.size else None,
            "holdout_from_ms": int(times[holdout_rows].min()),
            "last_trade_ms": int(times.max()) if times.size else None,
        },
        "csv_columns": list(inference.CSV_COLUMNS),
    }
    # The version names the model's numbers and how they were made: the same training gives
    # the same version; the library that fitted them is recorded beside it, not hashed.
    digest = hashlib.sha256(
        json.dumps([params, described], sort_keys=True, default=str).encode()
    ).hexdigest()
    return {"model_version": f"ridge-{digest[:12]}", **described, "sklearn": sklearn.__version__}
