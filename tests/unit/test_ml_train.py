"""Training: reproducible, time-split without leakage, evaluated against baselines, carded."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import joblib
import numpy as np
import pytest

from ml.data import synthetic_history
from ml.features import FEATURE_NAMES
from ml.labels import forward_log_returns
from ml.train import TrainingDataError, features_in_windows, request_windows, time_split, train


def test_the_same_seed_gives_the_same_model_metrics_and_predictions(tmp_path: Path) -> None:
    # GIVEN two trainings with the same settings, and one with another seed
    first = train(tmp_path / "a", n_trades=6000, seed=3)
    second = train(tmp_path / "b", n_trades=6000, seed=3)
    other = train(tmp_path / "c", n_trades=6000, seed=4)
    # THEN the same seed gives the same version, metrics and model bytes; another seed does not
    assert first.model_version == second.model_version
    assert first.metrics == second.metrics
    assert (tmp_path / "a" / "model.joblib").read_bytes() == (
        tmp_path / "b" / "model.joblib"
    ).read_bytes()
    assert other.model_version != first.model_version
    # AND the metrics file holds what train() returned, against both baselines
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert written == json.loads(json.dumps(first.metrics))
    assert {"rmse_model", "rmse_no_change", "rmse_train_mean", "skill_ci95", "verdict"} <= set(
        written
    )


def test_the_synthetic_history_is_distinct_trades_in_arrival_order() -> None:
    history = synthetic_history(3000, seed=5)
    assert history == synthetic_history(3000, seed=5)
    assert len({row["id"] for row in history}) == 3000
    assert set(history[0]) >= {"s", "p", "v", "t", "id"}


def test_holdout_is_later_in_time_and_no_training_label_reaches_into_it() -> None:
    # GIVEN a labelled history
    history = synthetic_history(8000, seed=2)
    horizon_s = 0.5
    y = forward_log_returns(history, horizon_s)
    times = np.array([row["t"] for row in history])
    # WHEN it is split
    fit, holdout = time_split(times, y, horizon_s)
    # THEN every training label ends before the first holdout trade, and all rows have labels
    assert times[fit].max() + horizon_s * 1000 < times[holdout].min()
    assert not np.isnan(y[fit]).any()
    assert not np.isnan(y[holdout]).any()
    assert 0.15 < holdout.size / (fit.size + holdout.size) < 0.25


def test_windows_cover_the_history_once_in_order_and_features_are_per_window() -> None:
    windows = request_windows(10_000, seed=1)
    assert windows[0].start == 0
    assert windows[-1].stop == 10_000
    assert all(a.stop == b.start for a, b in itertools.pairwise(windows))
    history = synthetic_history(500, seed=1)
    rows = features_in_windows(history, [slice(0, 200), slice(200, 500)])
    # the first trade of the second window starts without context, as a new request would
    assert rows.shape == (500, len(FEATURE_NAMES))
    assert rows[200, FEATURE_NAMES.index("context")] == 0.0


def test_the_artifact_is_plain_numbers_and_the_card_reads_the_verdict(tmp_path: Path) -> None:
    result = train(tmp_path / "m", n_trades=6000, seed=3)
    params = joblib.load(tmp_path / "m" / "model.joblib")
    # plain Python values only: loads under any numpy / scikit-learn version
    assert {type(v) for v in params["coef"] + params["mean"] + params["scale"]} == {float}
    assert params["features"] == list(FEATURE_NAMES)
    card = (tmp_path / "m" / "model-card.md").read_text()
    assert result.model_version in card
    assert {"beats": "**beats**", "ties": "does **not** beat", "loses": "**worse**"}[
        result.metrics["verdict"]
    ] in card


def test_too_little_history_is_refused_with_what_is_needed(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="need at least"):
        train(tmp_path / "m", n_trades=150, seed=1)
