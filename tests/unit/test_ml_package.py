"""model.tar.gz: SageMaker layout, reproducible bytes, and the SAME features as training."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ml.data import synthetic_history
from ml.package import PackageError, extract, load_inference, package
from ml.train import TrainResult, features_in_windows, train

ML = Path(__file__).parents[2] / "ml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(tmp_path_factory.mktemp("model") / "model", n_trades=5000, seed=5)


def test_the_package_has_the_sagemaker_sklearn_layout_and_packs_reproducibly(
    trained: TrainResult, tmp_path: Path
) -> None:
    first = package(trained.model_dir, tmp_path / "a" / "model.tar.gz")
    second = package(trained.model_dir, tmp_path / "b" / "other.tar.gz")
    with tarfile.open(first) as archive:
        names = sorted(archive.getnames())
    assert names == [
        "code",
        "code/features.py",
        "code/inference.py",
        "metadata.json",
        "model.joblib",
    ]
    assert first.read_bytes() == second.read_bytes()
    metadata = json.loads((extract(first, tmp_path / "x") / "metadata.json").read_text())
    assert metadata["model_version"] == trained.model_version


def test_a_trade_gets_the_same_features_in_training_and_in_the_packaged_serving_code(
    trained: TrainResult, tmp_path: Path
) -> None:
    # GIVEN the model packaged as for SageMaker and unpacked as SageMaker does
    served = extract(package(trained.model_dir, tmp_path / "model.tar.gz"), tmp_path / "opt-ml")
    inference = load_inference(served)
    # WHEN one request-sized window of history goes through training's path, and the same
    # trades, as raw JSON, through the package's input_fn and its feature code
    window = synthetic_history(600, seed=11)
    training_rows = features_in_windows(window)
    body = json.dumps([{**trade, "c": list(trade.get("c") or ())} for trade in window])
    serving_rows = inference.features.compute_features(inference.input_fn(body, "application/json"))
    # THEN every feature of every trade is identical, bit for bit
    assert np.array_equal(training_rows, serving_rows)
    # AND the package's feature code is the repository's file, not a copy that could drift
    assert inference.features.__file__ == str(served / "code" / "features.py")
    assert (served / "code" / "features.py").read_bytes() == (ML / "features.py").read_bytes()
    # AND the package loads as the trained model
    model = inference.model_fn(str(served))
    assert model["model_version"] == trained.model_version


def test_a_package_never_runs_beside_other_feature_code(
    trained: TrainResult, tmp_path: Path
) -> None:
    # GIVEN an unpacked package whose features.py was edited after training
    served = extract(package(trained.model_dir, tmp_path / "model.tar.gz"), tmp_path / "x")
    features = served / "code" / "features.py"
    features.write_text(features.read_text() + "\nCONTEXT = 5\n")
    # THEN loading the model refuses, telling what to do
    with pytest.raises(RuntimeError, match="retrain"):
        load_inference(served).model_fn(str(served))


def test_packaging_refuses_a_model_trained_with_other_feature_code(
    trained: TrainResult, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(trained.model_dir, tmp_path / "model"))
    metadata = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**metadata, "feature_code_sha256": "0" * 64}))
    with pytest.raises(PackageError, match="train again"):
        package(copy, tmp_path / "model.tar.gz")
    with pytest.raises(PackageError, match=r"no metadata\.json"):
        package(tmp_path, tmp_path / "other.tar.gz")
