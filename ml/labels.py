"""The prediction target, built with a point-in-time join.

Target: the symbol's log return from a trade to the last price known ``horizon_s`` seconds later
(an as-of join looking forward: the latest trade of the same symbol with t <= t0 + horizon).
Only prices after the trade enter the label, and features only use prices at or before it, so
there is no look-ahead leakage. Trades with no later trade inside the horizon get NaN (dropped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def forward_log_returns(trades: Sequence[Mapping[str, Any]], horizon_s: float) -> np.ndarray:
    labels = np.full(len(trades), np.nan)
    by_symbol: dict[str, list[int]] = {}
    for index, trade in enumerate(trades):
        by_symbol.setdefault(str(trade["s"]), []).append(index)
    horizon_ms = int(horizon_s * 1000)
    for indexes in by_symbol.values():
        ordered = sorted(indexes, key=lambda i: (int(trades[i]["t"]), i))
        times = np.array([int(trades[i]["t"]) for i in ordered])
        prices = np.array([float(trades[i]["p"]) for i in ordered])
        # Index of the last trade with t <= t0 + horizon (as-of, forward).
        last = np.searchsorted(times, times + horizon_ms, side="right") - 1
        has_future = times[last] > times
        values = np.where(has_future, np.log(prices[last] / prices), np.nan)
        labels[np.array(ordered)] = values
    return labels
