"""Labels: a forward as-of join per symbol, never past the horizon."""

from __future__ import annotations

import math

import pytest

from ml.labels import forward_log_returns

T0 = 1_700_000_000_000


def test_label_is_the_last_price_of_the_symbol_at_or_before_the_horizon() -> None:
    # GIVEN AAPL at 0 s, 1 s, 5 s (the horizon exactly) and 7 s, and MSFT alone
    trades = [
        {"s": "AAPL", "p": 100.0, "t": T0},
        {"s": "MSFT", "p": 50.0, "t": T0 + 500},
        {"s": "AAPL", "p": 101.0, "t": T0 + 1000},
        {"s": "AAPL", "p": 103.0, "t": T0 + 5000},
        {"s": "AAPL", "p": 99.0, "t": T0 + 7000},
    ]
    labels = forward_log_returns(trades, horizon_s=5)
    # THEN from 0 s the 5 s trade is inside the horizon and the 7 s one is not
    assert labels[0] == math.log(103 / 100)
    assert labels[2] == math.log(103 / 101)
    assert labels[3] == math.log(99 / 103)
    # AND a trade with no later trade of its symbol in the horizon has no label
    assert math.isnan(labels[1])
    assert math.isnan(labels[4])


def test_input_order_does_not_matter_and_same_millisecond_is_not_the_future() -> None:
    trades = [
        {"s": "AAPL", "p": 102.0, "t": T0 + 100},
        {"s": "AAPL", "p": 100.0, "t": T0},
        {"s": "AAPL", "p": 100.5, "t": T0},
    ]
    labels = forward_log_returns(trades, horizon_s=1)
    assert labels[1] == math.log(102 / 100)
    assert labels[2] == math.log(102 / 100.5)
    assert math.isnan(labels[0])


def test_a_horizon_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        forward_log_returns([], horizon_s=0)
