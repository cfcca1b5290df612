"""Features, labels and training: point-in-time correct, reproducible, shared with serving."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ml.features import FEATURE_NAMES, compute_features
from ml.labels import forward_log_returns
from ml.package import extract, package
from ml.serve import load_inference
from ml.train import features_in_windows, train

T0 = 1_700_000_000_000


def trades() -> list[dict[str, object]]:
    return [
        {"s": "AAPL", "p": 100.0, "v": 10, "t": T0},
        {"s": "MSFT", "p": 50.0, "v": 0, "t": T0 + 500},
        {"s": "AAPL", "p": 101.0, "v": 5, "t": T0 + 1000},
        {"s": "AAPL", "p": 99.0, "v": 5, "t": T0 + 7000},
    ]


def test_features_use_only_earlier_trades_of_the_same_symbol_in_input_order() -> None:
    rows = compute_features(trades())
    assert rows.shape == (4, len(FEATURE_NAMES))
    column = {name: i for i, name in enumerate(FEATURE_NAMES)}
    # the first trade of each symbol has no context: neutral values
    assert rows[0, column["log_return_1"]] == 0.0
    assert rows[1, column["log_return_1"]] == 0.0
    assert rows[1, column["is_price_update"]] == 1.0
    # the next AAPL trade sees the first one, not MSFT's
    assert rows[2, column["log_return_1"]] == math.log(101 / 100)
    assert rows[2, column["gap_seconds"]] == 1.0
    # a lone trade gets the same features whatever else is in its own request
    alone = compute_features([trades()[0]])
    assert np.array_equal(alone[0], rows[0])


def test_labels_look_forward_as_of_the_horizon_and_never_past_it() -> None:
    labels = forward_log_returns(trades(), horizon_s=5)
    # AAPL at T0: the last AAPL price at or before T0+5s is 101 (T0+7s is past the horizon)
    assert labels[0] == math.log(101 / 100)
    # no later trade of the symbol inside the horizon: no label
    assert math.isnan(labels[1])
    assert math.isnan(labels[3])


def test_training_is_reproducible(tmp_path: Path) -> None:
    first = train(tmp_path / "a", n_trades=4000, seed=3)
    second = train(tmp_path / "b", n_trades=4000, seed=3)
    assert first.model_version == second.model_version
    assert first.metrics == second.metrics
    assert first.metrics["holdout_rows"] > 0
    assert "rmse_baseline_no_change" in first.metrics


def test_a_trade_gets_the_same_features_in_training_and_in_the_packaged_serving_code(
    tmp_path: Path,
) -> None:
    # GIVEN a trained model, packaged as for SageMaker and unpacked as SageMaker does
    result = train(tmp_path / "model", n_trades=3000, seed=5)
    served = extract(package(result.model_dir, tmp_path / "model.tar.gz"), tmp_path / "opt-ml")
    inference = load_inference(served)
    # WHEN the same window of trades goes through training's path and the package's input_fn
    window = [dict(t) for t in trades()]
    training_rows = features_in_windows(window)
    import json

    serving_trades = inference.input_fn(json.dumps(window).encode(), "application/json")
    serving_rows = inference.compute_features(serving_trades)
    # THEN the features are identical, value for value
    assert np.array_equal(training_rows, serving_rows)
    # AND the packaged code is a copy of the repository's feature module, not a rewrite
    assert (served / "code" / "features.py").read_text() == (
        Path(__file__).parents[2] / "ml" / "features.py"
    ).read_text()
