"""The per-shard write budget's arithmetic, on a hand-driven clock: no moto, no network."""

from __future__ import annotations

import pytest

from tradestream.limits import MiB
from tradestream.local.shard_limits import (
    ShardBudget,
    ShardLimits,
    TokenBucket,
    rate_exceeded_message,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Shard:
    """Stands in for moto's shard object: the budget keys on identity only."""


def test_an_idle_shard_takes_one_seconds_worth_of_records_at_once_and_no_more() -> None:
    # GIVEN an idle shard
    budget = ShardBudget()
    # WHEN 1,001 small records arrive in the same instant
    verdicts = [budget.admit(100, now=0.0) for _ in range(1001)]
    # THEN the first 1,000 are taken and the 1,001st refused
    assert verdicts.count(True) == 1000
    assert verdicts[-1] is False


def test_records_come_back_at_the_limit_rate_and_never_beyond_one_second_of_burst() -> None:
    # GIVEN a shard drained of records at t=0
    budget = ShardBudget()
    assert all(budget.admit(10, now=0.0) for _ in range(1000))
    # WHEN 0.25 s pass
    # THEN 250 more records are taken, not 251
    assert [budget.admit(10, now=0.25) for _ in range(251)].count(True) == 250
    # AND after a long idle spell the bucket holds one second's worth, not more
    assert [budget.admit(10, now=60.0) for _ in range(1001)].count(True) == 1000


def test_bytes_are_limited_to_one_mib_a_second_with_few_records() -> None:
    # GIVEN an idle shard and records of 200 KiB (data plus partition key)
    budget = ShardBudget()
    size = 200 * 1024
    # WHEN ten arrive at once (2,000 KiB, far below 1,000 records)
    verdicts = [budget.admit(size, now=0.0) for _ in range(10)]
    # THEN five fit in 1 MiB (1,000 KiB) and the sixth does not
    assert verdicts == [True] * 5 + [False] * 5
    # AND half a second later 512 KiB more are available: two more records, not three
    assert [budget.admit(size, now=0.5) for _ in range(3)] == [True, True, False]


def test_a_refused_record_takes_nothing_from_either_bucket() -> None:
    # GIVEN a shard with 0.5 MiB of bytes left
    budget = ShardBudget()
    assert budget.admit(MiB // 2, now=0.0)
    # WHEN a record too big for what is left is refused
    assert not budget.admit(MiB // 2 + 1, now=0.0)
    # THEN the records bucket still holds 999 and a smaller record still fits
    assert budget.records.tokens == 999
    assert budget.admit(MiB // 2, now=0.0)


def test_a_largest_record_fits_an_idle_shard() -> None:
    # GIVEN an idle shard WHEN a 1 MiB record arrives THEN it is taken (a bucket holds 1 MiB)
    assert ShardBudget().admit(MiB, now=0.0)


def test_a_clock_stepping_back_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1000, capacity=1000)
    bucket.refill(10.0)
    bucket.tokens = 0
    bucket.refill(9.0)
    assert bucket.tokens == 0
    bucket.refill(9.5)
    assert bucket.tokens == pytest.approx(500)


def test_each_shard_has_its_own_budget() -> None:
    # GIVEN two shards, the first drained by a burst of 1,000
    clock = Clock()
    limits = ShardLimits(clock=clock)
    hot, cold = Shard(), Shard()
    assert all(limits.admit([(hot, 10)] * 1000))
    # WHEN one call carries entries for both
    verdicts = limits.admit([(hot, 10), (cold, 10)] * 3)
    # THEN only the drained shard's entries are refused, in their places
    assert verdicts == [False, True] * 3


def test_once_a_shard_refuses_an_entry_it_refuses_the_rest_of_that_call() -> None:
    # GIVEN a shard with room for one more 600 KiB record's bytes but not two
    clock = Clock()
    limits = ShardLimits(clock=clock)
    shard = Shard()
    assert limits.admit([(shard, 600 * 1024)]) == [True]
    # WHEN a call brings a big record that does not fit, then a small one that would
    verdicts = limits.admit([(shard, 600 * 1024), (shard, 10)])
    # THEN the small one is refused too: it would overtake the big one of the same shard
    assert verdicts == [False, False]
    # AND the next call, a moment later, takes the small one
    clock.now += 0.001
    assert limits.admit([(shard, 10)]) == [True]


def test_the_budget_of_a_shard_recovers_with_time() -> None:
    clock = Clock()
    limits = ShardLimits(clock=clock, records_per_second=10, bytes_per_second=MiB)
    shard = Shard()
    assert limits.admit([(shard, 1)] * 11).count(True) == 10
    clock.now += 0.5
    assert limits.admit([(shard, 1)] * 6).count(True) == 5


def test_an_entry_no_shard_holds_is_left_to_moto() -> None:
    assert ShardLimits().admit([(None, 10)]) == [True]


def test_the_message_is_aws_wording() -> None:
    assert rate_exceeded_message("shardId-000000000001", "exampleStreamName", "111111111111") == (
        "Rate exceeded for shard shardId-000000000001 in stream exampleStreamName under account "
        "111111111111."
    )
