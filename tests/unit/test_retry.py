"""Exponential backoff with full jitter: the window doubles to a cap, delays spread over it."""

from __future__ import annotations

import random

import pytest

from tradestream.retry import Backoff


def test_window_doubles_from_base_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 5)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert backoff.ceiling(10_000) == 5  # no overflow after a long outage


def test_delays_are_spread_over_the_whole_window() -> None:
    # GIVEN a seeded backoff WHEN 2,000 delays are drawn for the 3rd retry (window 0..4 s)
    backoff = Backoff(1, 60, random.Random(3))
    delays = [backoff.delay(3) for _ in range(2000)]
    # THEN all fall in the window and cover it (full jitter, not "base + a little")
    assert 0 <= min(delays) < 0.1
    assert 3.9 < max(delays) <= 4
    assert 1.8 < sum(delays) / len(delays) < 2.2


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
