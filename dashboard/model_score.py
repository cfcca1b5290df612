"""How the model's predictions have fared against what happened next, scored as the lake fills.

A prediction made at trade time ``t`` forecasts the log return from that trade's price to the
last price known ``horizon`` seconds later (ml/labels.py's target). It can be scored once the lake
holds a later trade of the symbol past ``t + horizon``: only then is the last price at or before
``t + horizon`` final. The no-change baseline forecasts a return of 0, so its error is the size of
the actual return: a model that does not beat it has learnt nothing useful.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Symbol:
    times: list[int] = field(default_factory=list)  # trade times (ms), sorted
    prices: list[float] = field(default_factory=list)
    pending: list[tuple[int, float, float]] = field(default_factory=list)  # (t, p, prediction)


class ModelScore:
    """Mean absolute error of the live predictions and of the no-change baseline, over the last
    ``window`` scored predictions (so a model swap shows within minutes)."""

    def __init__(self, horizon_s: float, *, window: int = 5000, keep_trades: int = 20_000) -> None:
        self.horizon_ms = int(horizon_s * 1000)
        self._symbols: dict[str, _Symbol] = {}
        self._errors: deque[tuple[float, float]] = deque(maxlen=window)  # (model, baseline)
        self._keep = keep_trades
        self.scored = 0

    def add(self, lines: list[dict[str, Any]]) -> None:
        """Lake lines as they arrive (any order; redelivered duplicates are harmless)."""
        touched: set[str] = set()
        for line in lines:
            try:
                symbol, t, p = str(line["s"]), int(line["t"]), float(line["p"])
            except (KeyError, TypeError, ValueError):
                continue
            state = self._symbols.setdefault(symbol, _Symbol())
            at = bisect.bisect_right(state.times, t)
            state.times.insert(at, t)
            state.prices.insert(at, p)
            prediction = line.get("prediction")
            if isinstance(prediction, (int, float)) and p > 0:
                state.pending.append((t, p, float(prediction)))
            touched.add(symbol)
        for symbol in touched:
            self._score(self._symbols[symbol])

    def _score(self, state: _Symbol) -> None:
        if not state.times:
            return
        newest = state.times[-1]
        waiting: list[tuple[int, float, float]] = []
        for t, p, prediction in state.pending:
            target = t + self.horizon_ms
            if newest <= target:
                waiting.append((t, p, prediction))
                continue
            later = state.prices[bisect.bisect_right(state.times, target) - 1]
            actual = math.log(later / p) if later > 0 else 0.0
            self._errors.append((abs(prediction - actual), abs(actual)))
            self.scored += 1
        state.pending = waiting
        if len(state.times) > self._keep:  # old trades are no one's target any more
            drop = len(state.times) - self._keep
            del state.times[:drop], state.prices[:drop]

    def summary(self) -> dict[str, Any]:
        n = len(self._errors)
        if not n:
            return {"n": 0, "scored": self.scored, "mae": None, "baseline_mae": None}
        mae = sum(e[0] for e in self._errors) / n
        baseline = sum(e[1] for e in self._errors) / n
        return {
            "n": n,
            "scored": self.scored,
            # Returns over a fraction of a second are tiny: in basis points they read as numbers.
            "mae_bp": round(mae * 1e4, 3),
            "baseline_mae_bp": round(baseline * 1e4, 3),
            "mae": mae,
            "baseline_mae": baseline,
            "skill": round(1 - mae / baseline, 4) if baseline else None,
        }
