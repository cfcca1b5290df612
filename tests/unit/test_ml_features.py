"""Features: point-in-time, per symbol, from the request's own trades, in input order."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from ml.features import CONTEXT, FEATURE_NAMES, compute_features

T0 = 1_700_000_000_000
COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}


def trade(s: str, p: float, t: int, v: float = 10, **extra: Any) -> dict[str, Any]:
    return {"s": s, "p": p, "v": v, "t": T0 + t, **extra}


def test_a_lone_trade_gets_neutral_values() -> None:
    # GIVEN one trade with nothing before it WHEN its features are computed
    row = compute_features([trade("AAPL", 100.0, 0, v=0)])[0]
    # THEN returns, gap and context are neutral; only its own volume facts show
    for name in ("ret_1", "ret_2", "ret_5", "ret_20", "gap_s", "context"):
        assert row[COLUMN[name]] == 0.0
    assert row[COLUMN["is_price_update"]] == 1.0
    assert row[COLUMN["log_volume"]] == 0.0


def test_context_is_the_earlier_trades_of_the_same_symbol_only() -> None:
    # GIVEN two symbols interleaved
    trades = [
        trade("AAPL", 100.0, 0),
        trade("MSFT", 50.0, 500),
        trade("AAPL", 101.0, 1000),
        trade("AAPL", 99.0, 3000),
    ]
    rows = compute_features(trades)
    # THEN MSFT's first trade has no context and AAPL's later trades see only AAPL
    assert rows[1, COLUMN["ret_1"]] == 0.0
    assert math.isclose(rows[2, COLUMN["ret_1"]], math.log(101 / 100), rel_tol=1e-12)
    assert rows[2, COLUMN["gap_s"]] == 1.0
    assert math.isclose(rows[3, COLUMN["ret_1"]], math.log(99 / 101), rel_tol=1e-12)
    # ret_2 reaches two AAPL trades back; ret_5 goes as far back as the context allows
    assert math.isclose(rows[3, COLUMN["ret_2"]], math.log(99 / 100), rel_tol=1e-12)
    assert math.isclose(rows[3, COLUMN["ret_5"]], math.log(99 / 100), rel_tol=1e-12)
    assert rows[3, COLUMN["context"]] == 2 / CONTEXT


def test_rows_follow_input_order_and_context_follows_trade_time() -> None:
    # GIVEN trades of one symbol, then the same trades shuffled
    trades = [trade("AAPL", 100 + i % 7, i * 100, v=i) for i in range(50)]
    order = list(range(50))
    random.Random(1).shuffle(order)
    shuffled = [trades[i] for i in order]
    # WHEN features are computed for both
    rows, rows_shuffled = compute_features(trades), compute_features(shuffled)
    # THEN each trade gets the same row wherever it sits in the request
    assert np.array_equal(rows_shuffled, rows[order])


def test_later_trades_never_change_an_earlier_trades_features() -> None:
    # GIVEN a request, and the same request with later trades appended
    early = [trade("AAPL", 100 + i, i * 100) for i in range(10)]
    later = [trade("AAPL", 200 + i, 5000 + i * 100) for i in range(10)]
    # THEN the early trades' features are unchanged: no look-ahead
    assert np.array_equal(compute_features(early), compute_features(early + later)[:10])


def test_same_millisecond_trades_keep_input_order() -> None:
    trades = [trade("AAPL", 100.0, 0), trade("AAPL", 102.0, 0)]
    rows = compute_features(trades)
    assert rows[0, COLUMN["ret_1"]] == 0.0
    assert math.isclose(rows[1, COLUMN["ret_1"]], math.log(102 / 100), rel_tol=1e-12)
    assert rows[1, COLUMN["gap_s"]] == 0.0


def test_a_resent_trade_is_not_context_and_gets_its_originals_features() -> None:
    # GIVEN a trade re-sent (same id) among others, as at-least-once delivery does
    first = trade("AAPL", 100.0, 0, id="a")
    second = trade("AAPL", 101.0, 100, id="b")
    with_resend = [first, second, dict(first), trade("AAPL", 102.0, 200, id="c")]
    without = [first, second, trade("AAPL", 102.0, 200, id="c")]
    rows, distinct = compute_features(with_resend), compute_features(without)
    # THEN the re-send copies its original's row and the others are as if it never came
    assert np.array_equal(rows[2], rows[0])
    assert np.array_equal(rows[[0, 1, 3]], distinct)


def test_gap_is_capped_and_empty_input_gives_no_rows() -> None:
    rows = compute_features([trade("AAPL", 100.0, 0), trade("AAPL", 100.0, 3_600_000)])
    assert rows[1, COLUMN["gap_s"]] == 60.0
    assert compute_features([]).shape == (0, len(FEATURE_NAMES))
