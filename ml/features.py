"""Features of raw trades, computed the same way in training and in serving.

This file is copied byte for byte into the model package (``code/features.py``) and runs inside
the SageMaker scikit-learn container, whose oldest image we target (1.2-1) has Python 3.9 and
numpy 1.24: it imports only the standard library and numpy, and keeps to Python 3.9 syntax.

Context, and what it means for batching: a trade's features use the trade itself plus the
EARLIER trades of the same symbol in the SAME request (ordered by ``t``; ties keep input order).
Nothing is kept between requests, so the endpoint is stateless and scales horizontally. A
Firehose batch carries many trades of each symbol, which gives rolling context; a trade alone in
its request (or the first of its symbol) gets neutral values: zero returns, zero gap, context 0.
A row whose ``id`` repeats an earlier row's (an at-least-once re-send) is not context and gets
its original's features, as training (which sees each trade once) does. Training computes the
features over request-sized windows of history, so both see the same kind of context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FEATURE_NAMES = (
    "ret_1",  # log(p / previous p of the symbol): the lag-1 bounce
    "ret_2",  # log(p / p two trades back), or as far back as the context goes
    "ret_5",
    "ret_20",
    "gap_s",  # seconds since the previous trade of the symbol, capped
    "log_volume",  # log1p(v)
    "is_price_update",  # 1 when v == 0 (Finnhub's price-only updates)
    "context",  # how much history the trade has: min(earlier trades, CONTEXT) / CONTEXT
)
RETURN_LAGS = (1, 2, 5, 20)
CONTEXT = 20
MAX_GAP_S = 60.0


def compute_features(trades: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """One row of FEATURE_NAMES per trade, in input order (float64, shape (n, 8)).

    Trades must be valid (the inference code's ``input_fn`` checks them): ``s`` a symbol,
    ``p`` > 0, ``v`` >= 0, ``t`` epoch milliseconds; ``id`` is optional.
    """
    firsts, source = _first_occurrences(trades)
    unique = [trades[i] for i in firsts] if len(firsts) < len(trades) else trades
    rows = _features_of_distinct(unique)
    if len(firsts) == len(trades):
        return rows
    expanded: np.ndarray = rows[source]
    return expanded


def _first_occurrences(trades: Sequence[Mapping[str, Any]]) -> tuple[list[int], np.ndarray]:
    """Indexes of the rows that are not re-sends, and for every row its distinct row's index."""
    firsts: list[int] = []
    source = np.empty(len(trades), dtype=np.int64)
    seen: dict[str, int] = {}
    for index, trade in enumerate(trades):
        key = trade.get("id")
        if key is not None:
            known = seen.get(str(key))
            if known is not None:
                source[index] = known
                continue
            seen[str(key)] = len(firsts)
        source[index] = len(firsts)
        firsts.append(index)
    return firsts, source


def _features_of_distinct(trades: Sequence[Mapping[str, Any]]) -> np.ndarray:
    n = len(trades)
    rows = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float64)
    if n == 0:
        return rows
    codes: dict[str, int] = {}
    symbol = np.fromiter((codes.setdefault(str(t["s"]), len(codes)) for t in trades), np.int64, n)
    price = np.fromiter((float(t["p"]) for t in trades), np.float64, n)
    volume = np.fromiter((float(t["v"]) for t in trades), np.float64, n)
    time_ms = np.fromiter((int(t["t"]) for t in trades), np.int64, n)

    # Sorted by symbol, then time, then input order: each symbol's trades become one run.
    order = np.lexsort((np.arange(n), time_ms, symbol))
    sorted_symbol = symbol[order]
    run_start = np.ones(n, dtype=bool)
    run_start[1:] = sorted_symbol[1:] != sorted_symbol[:-1]
    first_of_run = np.flatnonzero(run_start)[np.cumsum(run_start) - 1]
    position = np.arange(n)
    earlier = position - first_of_run  # trades of the same symbol before this one

    log_price = np.log(price[order])
    columns = []
    for lag in RETURN_LAGS:
        # Telescoped: the sum of the last `lag` one-step returns, or of all there are.
        back = np.maximum(position - lag, first_of_run)
        columns.append(log_price - log_price[back])
    sorted_time = time_ms[order]
    previous = np.maximum(position - 1, first_of_run)
    gap = (sorted_time - sorted_time[previous]) / 1000.0
    columns.append(np.minimum(gap, MAX_GAP_S))
    sorted_volume = volume[order]
    columns.append(np.log1p(sorted_volume))
    columns.append((sorted_volume == 0).astype(np.float64))
    columns.append(np.minimum(earlier, CONTEXT) / CONTEXT)

    rows[order] = np.column_stack(columns)
    return rows
