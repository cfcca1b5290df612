"""Features of raw trades, computed the same way in training and in serving.

This file is copied verbatim into the model package (``code/features.py``) and imported by the
inference code inside the SageMaker scikit-learn container, so it may import only the standard
library and numpy.

Context: a trade's features use the trade itself plus the EARLIER trades of the same symbol in
the same request (ordered by ``t``, ties in input order). No state is kept between requests, so
the endpoint is stateless and horizontally scalable. A Firehose batch carries many trades per
symbol, which gives rolling context; a trade alone in its request gets neutral values (zero
returns, zero gaps). Training computes the features over the same kind of windows (see
``train.py``: history is cut into request-sized windows), so both see the same context.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FEATURE_NAMES = (
    "log_return_1",  # log(p / previous p of the symbol)
    "log_return_5",  # log(p / p five trades back), 0 without that much context
    "mean_return_5",  # mean of the last five one-step log returns
    "gap_seconds",  # time since the previous trade of the symbol, capped at 60 s
    "log_volume",  # log1p(v)
    "is_price_update",  # 1 when v == 0 (Finnhub's price-only updates)
    "position",  # how much context the trade has: min(trades before it, 20) / 20
)
MAX_GAP_SECONDS = 60.0
CONTEXT = 20


def compute_features(trades: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """One row of FEATURE_NAMES per trade, in input order."""
    rows = np.zeros((len(trades), len(FEATURE_NAMES)), dtype=np.float64)
    by_symbol: dict[str, list[int]] = {}
    for index, trade in enumerate(trades):
        by_symbol.setdefault(str(trade["s"]), []).append(index)
    for indexes in by_symbol.values():
        ordered = sorted(indexes, key=lambda i: (int(trades[i]["t"]), i))
        prices: list[float] = []
        returns: list[float] = []
        previous_t: int | None = None
        for i in ordered:
            trade = trades[i]
            price, volume, t = float(trade["p"]), float(trade["v"]), int(trade["t"])
            r1 = math.log(price / prices[-1]) if prices else 0.0
            r5 = math.log(price / prices[-5]) if len(prices) >= 5 else 0.0
            returns.append(r1)
            gap = min((t - previous_t) / 1000.0, MAX_GAP_SECONDS) if previous_t is not None else 0.0
            rows[i] = (
                r1,
                r5,
                sum(returns[-5:]) / len(returns[-5:]),
                max(gap, 0.0),
                math.log1p(max(volume, 0.0)),
                1.0 if volume == 0 else 0.0,
                min(len(prices), CONTEXT) / CONTEXT,
            )
            prices.append(price)
            previous_t = t
    return rows
