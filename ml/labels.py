"""The prediction target, built with a point-in-time join.

Target: the symbol's log return from a trade to the last price known ``horizon_s`` seconds later,
i.e. an as-of join looking forward (the latest trade of the same symbol with
``t <= t0 + horizon``, what ``pandas.merge_asof(direction="backward")`` gives when joining on
``t0 + horizon``). Only prices after the trade enter its label and the features only use prices
at or before it, so there is no look-ahead. A trade with no later trade of its symbol inside the
horizon has no label (NaN): nothing is known about its future.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def forward_log_returns(trades: Sequence[Mapping[str, Any]], horizon_s: float) -> np.ndarray:
    """One label per trade, in input order; NaN where the horizon holds no later trade."""
    if horizon_s <= 0:
        raise ValueError("the horizon must be positive")
    labels = np.full(len(trades), np.nan)
    by_symbol: dict[str, list[int]] = {}
    for index, trade in enumerate(trades):
        by_symbol.setdefault(str(trade["s"]), []).append(index)
    horizon_ms = round(horizon_s * 1000)
    for indexes in by_symbol.values():
        rows = np.array(indexes)
        times = np.array([int(trades[i]["t"]) for i in indexes], dtype=np.int64)
        order = np.lexsort((rows, times))  # time, then input order
        rows, times = rows[order], times[order]
        prices = np.array([float(trades[i]["p"]) for i in rows])
        # Position of the last trade with t <= t0 + horizon: the as-of join, forward.
        last = np.searchsorted(times, times + horizon_ms, side="right") - 1
        has_future = times[last] > times
        labels[rows] = np.where(has_future, np.log(prices[last] / prices), np.nan)
    return labels
