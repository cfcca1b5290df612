"""The default model: trained reproducibly on first use (a few seconds), then cached.

Cache: ``$XDG_CACHE_HOME/tradestream/`` (``~/.cache/tradestream/``), one extracted package per
key. The key digests everything the model depends on (the ml/ sources, the synthetic market and
the trade record its rows are stamped with, the training settings, the numpy and scikit-learn
versions), so changing the feature code can never serve a stale model: it trains a new one under
a new key. Concurrent first uses are safe: each
builds in its own staging directory and renames it into place atomically.

Entries would pile up as the code changes, so each use marks its entry (mtime), and adding an
entry removes those unused for ``STALE_AFTER_DAYS``: long enough that no server still running
from one loses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy
import sklearn

import tradestream.synthetic
import tradestream.trade
from ml.package import ML_DIR, extract, package
from ml.train import DEFAULT_HORIZON_S, DEFAULT_SEED, DEFAULT_TRADES, train

READY_MARKER = Path("code") / "inference.py"
STALE_AFTER_DAYS = 30
# Cache entries: default models by key, and model packages unpacked by ml.serve by digest.
ENTRY_PREFIXES = ("model-", "artifact-")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tradestream"


def default_model_key() -> str:
    digest = hashlib.sha256()
    sources = [
        *sorted(ML_DIR.glob("*.py")),
        Path(tradestream.synthetic.__file__),
        Path(tradestream.trade.__file__),
    ]
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    settings = (DEFAULT_TRADES, DEFAULT_SEED, DEFAULT_HORIZON_S, numpy.__version__)
    digest.update(repr((settings, sklearn.__version__)).encode())
    return digest.hexdigest()[:16]


def default_model_dir() -> Path:
    """An extracted package of the default model, training and packaging it if not cached."""
    served = cache_dir() / f"model-{default_model_key()}"
    if (served / READY_MARKER).exists():
        mark_used(served)
        return served
    served.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=served.parent, prefix=".build-") as name:
        scratch = Path(name)
        trained = train(
            scratch / "trained",
            n_trades=DEFAULT_TRADES,
            seed=DEFAULT_SEED,
            horizon_s=DEFAULT_HORIZON_S,
        )
        artifact = package(trained.model_dir, scratch / "model.tar.gz")
        staging = extract(artifact, scratch / "extracted")
        shutil.copy2(artifact, staging / "model.tar.gz")  # what `model package` would upload
        try:
            staging.rename(served)  # atomic: a racing process either wins or finds ours
        except OSError:
            if not (served / READY_MARKER).exists():
                raise
    prune_cache(keep=served)
    return served


def mark_used(entry: Path) -> None:
    """Set the entry's mtime to now: when it was last served (best effort on a read-only cache)."""
    with contextlib.suppress(OSError):
        os.utime(entry)


def prune_cache(keep: Path, now: float | None = None) -> list[Path]:
    """Remove cache entries unused for STALE_AFTER_DAYS, never ``keep``; return what went."""
    cutoff = (time.time() if now is None else now) - STALE_AFTER_DAYS * 86_400
    removed = []
    for entry in cache_dir().iterdir():
        if entry == keep or not entry.name.startswith(ENTRY_PREFIXES) or not entry.is_dir():
            continue
        try:
            stale = entry.stat().st_mtime < cutoff
        except FileNotFoundError:  # another process pruned it first
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
