"""Packing trades into InvokeEndpoint bodies under the byte limit, in order."""

from __future__ import annotations

import json
import math

import pytest

from lambdas.enrich.chunks import OversizeItemError, chunk


def items(count: int, size: int) -> list[bytes]:
    """``count`` JSON strings of exactly ``size`` bytes each."""
    return [json.dumps(f"{i:0{size - 2}d}").encode() for i in range(count)]


def test_everything_fits_in_one_body_under_the_limit() -> None:
    # GIVEN 10 items of 10 bytes WHEN chunked under 1,000 bytes
    parts = chunk(items(10, 10), 1000)

    # THEN one JSON array holds them all, in order
    assert len(parts) == 1
    assert parts[0].indexes == tuple(range(10))
    assert json.loads(parts[0].body) == [f"{i:08d}" for i in range(10)]


def test_items_split_into_the_fewest_bodies_each_under_the_limit() -> None:
    # GIVEN 1,000 items of 100 bytes and a 10,000-byte limit: a body of n items is 101 n + 1
    parts = chunk(items(1000, 100), 10_000)

    # THEN each body holds floor(9,999 / 101) = 99 items (the last one the rest)
    per_body = (10_000 - 1) // 101
    assert per_body == 99
    assert len(parts) == math.ceil(1000 / per_body) == 11
    assert [len(p.indexes) for p in parts] == [99] * 10 + [10]
    assert all(len(p.body) <= 10_000 for p in parts)
    # AND the bodies are valid JSON arrays that keep the input order
    decoded = [value for p in parts for value in json.loads(p.body)]
    assert decoded == [f"{i:098d}" for i in range(1000)]
    assert [i for p in parts for i in p.indexes] == list(range(1000))


def test_an_item_exactly_at_the_limit_fits_alone() -> None:
    # GIVEN items whose array of one is exactly the limit
    parts = chunk(items(3, 98), 100)

    # THEN each gets its own body
    assert [p.indexes for p in parts] == [(0,), (1,), (2,)]
    assert all(len(p.body) == 100 for p in parts)


def test_an_item_that_cannot_fit_is_refused() -> None:
    # GIVEN one item larger than the limit WHEN chunked THEN it is refused, naming the item
    with pytest.raises(OversizeItemError, match="item 1"):
        chunk([b"1", b'"' + b"x" * 200 + b'"'], 100)


def test_no_items_give_no_bodies() -> None:
    # GIVEN nothing WHEN chunked THEN no InvokeEndpoint call is needed
    assert chunk([], 1000) == []
