"""Holdout metrics of a return forecast against naive baselines, with an honest error bar.

Baselines: ``no_change`` predicts a zero return (the last price stays: a random walk's best
guess) and ``train_mean`` predicts the training labels' mean (a drift). ``skill`` is the share of
the no-change baseline's squared error the model removes (out-of-sample R² against zero).

Labels of neighbouring trades overlap (each looks ``horizon`` ahead), so rows are far from
independent; the 95% interval of the skill comes from a block bootstrap over contiguous stretches
of holdout time, seeded, so it is reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BOOTSTRAP_BLOCKS = 40
BOOTSTRAP_DRAWS = 1000


def evaluate(
    y: np.ndarray,
    predicted: np.ndarray,
    *,
    times_ms: np.ndarray,
    symbols: np.ndarray,
    train_mean: float,
    seed: int,
) -> dict[str, Any]:
    """Metrics of ``predicted`` against the labels ``y`` of the holdout rows."""
    baseline_error = float(np.mean(y**2))
    moving = y != 0
    hits = np.sign(predicted[moving]) == np.sign(y[moving])
    metrics: dict[str, Any] = {
        "holdout_rows": len(y),
        "rmse_model": _rmse(y, predicted),
        "rmse_no_change": float(np.sqrt(baseline_error)),
        "rmse_train_mean": _rmse(y, np.full_like(y, train_mean)),
        "mae_model": float(np.mean(np.abs(y - predicted))),
        "mae_no_change": float(np.mean(np.abs(y))),
        "skill": _skill(y, predicted),
        "direction_accuracy": float(np.mean(hits)) if hits.size else 0.0,
        "correlation": _correlation(y, predicted),
    }
    low, high = _skill_interval(y, predicted, times_ms, seed)
    metrics["skill_ci95"] = [low, high]
    metrics["skill_per_symbol"] = {
        str(symbol): _skill(y[symbols == symbol], predicted[symbols == symbol])
        for symbol in sorted(set(symbols.tolist()))
    }
    return metrics


def verdict(metrics: dict[str, Any]) -> str:
    """``beats``, ``ties`` or ``loses``: against no change, judged by the skill's interval."""
    low, high = metrics["skill_ci95"]
    if low > 0:
        return "beats"
    if high < 0:
        return "loses"
    return "ties"


def _rmse(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - predicted) ** 2)))


def _skill(y: np.ndarray, predicted: np.ndarray) -> float:
    base = float(np.sum(y**2))
    return 1.0 - float(np.sum((y - predicted) ** 2)) / base if base > 0 else 0.0


def _correlation(y: np.ndarray, predicted: np.ndarray) -> float:
    if len(y) < 2 or np.std(y) == 0 or np.std(predicted) == 0:
        return 0.0
    return float(np.corrcoef(y, predicted)[0, 1])


def _skill_interval(
    y: np.ndarray, predicted: np.ndarray, times_ms: np.ndarray, seed: int
) -> tuple[float, float]:
    order = np.argsort(times_ms, kind="stable")
    gain = (y**2 - (y - predicted) ** 2)[order]  # the error the model removes, per row
    base = (y**2)[order]
    blocks = min(BOOTSTRAP_BLOCKS, len(y))
    if blocks < 2:
        return (0.0, 0.0)
    edges = np.linspace(0, len(y), blocks + 1).astype(np.int64)
    gain_sums = np.add.reduceat(gain, edges[:-1])
    base_sums = np.add.reduceat(base, edges[:-1])
    draws = np.random.default_rng(seed).integers(0, blocks, size=(BOOTSTRAP_DRAWS, blocks))
    totals = base_sums[draws].sum(axis=1)
    skills = np.where(totals > 0, gain_sums[draws].sum(axis=1) / np.maximum(totals, 1e-300), 0.0)
    low, high = np.percentile(skills, [2.5, 97.5])
    return (float(low), float(high))
