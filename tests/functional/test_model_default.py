"""With no model directory the server serves the default model: trained reproducibly on first
use, then reused from the cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

import ml.default_model
from ml.default_model import default_model_dir, prune_cache
from ml.serve import start_in_thread

T0 = 1_700_000_000_000


@pytest.fixture
def small_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache and a smaller default training, so the test takes a second."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ml.default_model, "DEFAULT_TRADES", 5000)
    return tmp_path / "cache" / "tradestream"


def test_the_default_model_is_trained_once_then_served_from_the_cache(
    small_default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no cached model WHEN a server starts without a model directory
    with start_in_thread() as first:
        answer = httpx.post(
            f"{first.url}/invocations", json=[{"s": "AAPL", "p": 1, "v": 1, "t": T0}]
        )
    # THEN it trained, packaged and cached the default model, and serves it
    cached = default_model_dir()
    assert cached.parent == small_default
    assert (cached / "model.tar.gz").exists()
    assert answer.json()["model_version"] == first.model_version

    # AND a second server reuses the cache: training is never called again
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("retrained")

    monkeypatch.setattr(ml.default_model, "train", no_training)
    with start_in_thread() as second:
        assert second.model_version == first.model_version


def test_other_training_settings_never_reuse_a_cached_model(
    small_default: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = default_model_dir()
    monkeypatch.setattr(ml.default_model, "DEFAULT_TRADES", 6000)
    assert default_model_dir() != first


def test_cache_entries_unused_for_a_month_go_when_a_model_is_added(
    small_default: Path,
) -> None:
    # GIVEN a cache with an old and a recent default model, an old unpacked package, and a
    # stray file that is not an entry
    small_default.mkdir(parents=True)
    old_model, recent_model = small_default / "model-old", small_default / "model-recent"
    old_package, stray = small_default / "artifact-old", small_default / "notes.txt"
    for entry in (old_model, recent_model, old_package):
        entry.mkdir()
        (entry / "weights").write_text("x")
    stray.write_text("keep me")
    month_ago = time.time() - 31 * 86_400
    for entry in (old_model, old_package, stray):
        os.utime(entry, (month_ago, month_ago))

    # WHEN the default model is trained into it
    served = default_model_dir()

    # THEN the entries unused for a month are gone, the rest stay, the new model is served
    assert not old_model.exists()
    assert not old_package.exists()
    assert recent_model.exists()
    assert stray.exists()
    assert (served / "model.tar.gz").exists()


def test_serving_from_the_cache_marks_the_entry_used(small_default: Path) -> None:
    # GIVEN a cached default model last used a month ago
    served = default_model_dir()
    month_ago = time.time() - 31 * 86_400
    os.utime(served, (month_ago, month_ago))
    # WHEN it is served again THEN it counts as used now, so pruning keeps it
    assert default_model_dir() == served
    assert served.stat().st_mtime > time.time() - 60
    assert prune_cache(keep=small_default / "model-other") == []
