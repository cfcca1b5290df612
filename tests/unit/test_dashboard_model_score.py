"""The dashboard's live score of the model: each prediction against the price one horizon later,
next to the no-change baseline, scored only once that price is final."""

from __future__ import annotations

import math

import pytest

from dashboard.model_score import ModelScore


def line(t: int, p: float, prediction: float | None = None, s: str = "AAPL") -> dict[str, object]:
    return {"s": s, "t": t, "p": p, "prediction": prediction, "id": f"{s}-{t}"}


def test_a_prediction_waits_until_a_trade_past_its_horizon_is_in_the_lake() -> None:
    score = ModelScore(horizon_s=0.25)
    # GIVEN a prediction at t=0 and a trade inside its horizon
    score.add([line(0, 100.0, math.log(1.01)), line(100, 101.0)])
    # THEN it is not scored yet: a later trade at or before t+250 ms could still arrive
    assert score.summary()["n"] == 0
    # WHEN a trade past the horizon arrives
    score.add([line(300, 102.0)])
    # THEN the target is the last price at or before t+250 ms (101, not 102)
    summary = score.summary()
    assert summary["n"] == 1
    assert summary["mae"] == pytest.approx(0.0, abs=1e-12)
    assert summary["baseline_mae"] == pytest.approx(math.log(1.01))
    assert summary["skill"] == pytest.approx(1.0)


def test_errors_average_over_symbols_and_lines_arrive_in_any_order() -> None:
    score = ModelScore(horizon_s=0.25)
    # GIVEN two symbols, lines out of order (as lake objects of different shards arrive)
    score.add([line(400, 50.0, s="MSFT"), line(0, 50.0, 0.02, s="MSFT")])
    score.add([line(0, 10.0, 0.0), line(1000, 11.0), line(200, 10.5)])
    summary = score.summary()
    # THEN MSFT: actual 0 (the price at 250 is still 50), error 0.02; AAPL: actual log(1.05)
    aapl_actual = math.log(10.5 / 10.0)
    assert summary["n"] == 2
    assert summary["mae"] == pytest.approx((0.02 + aapl_actual) / 2)
    assert summary["baseline_mae"] == pytest.approx((0.0 + aapl_actual) / 2)


def test_lines_without_a_prediction_or_unreadable_are_prices_only() -> None:
    score = ModelScore(horizon_s=0.25)
    score.add([line(0, 10.0), {"s": "AAPL", "t": "x"}, {"nothing": 1}, line(900, 12.0)])
    assert score.summary() == {"n": 0, "scored": 0, "mae": None, "baseline_mae": None}
