"""The seeded synthetic market is core: ml trains on it without the producer, and the default
model's cache key follows its source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import ml.default_model
import tradestream.synthetic
import tradestream.trade

REPO = Path(__file__).resolve().parents[2]


def test_training_data_comes_from_the_core_without_the_producer() -> None:
    # GIVEN a fresh interpreter
    # WHEN ml's training data and the default model are imported
    probe = (
        "import sys, ml.data, ml.default_model; "
        "print(sorted({m.partition('.')[0] for m in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    # THEN no producer module came with them
    assert "tradestream" in done.stdout
    assert "'producer'" not in done.stdout


@pytest.mark.parametrize("module", [tradestream.synthetic, tradestream.trade])
def test_the_default_model_key_changes_with_the_market_it_trains_on(
    module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the default model's key, and a copy of the module with one line changed
    before = ml.default_model.default_model_key()
    source = Path(str(module.__file__))
    changed = tmp_path / source.name
    changed.write_text(source.read_text() + "\n# a change\n")
    # WHEN the key is computed over the changed copy
    monkeypatch.setattr(module, "__file__", str(changed))
    after = ml.default_model.default_model_key()
    # THEN it is another key: a stale model is never served
    assert after != before
