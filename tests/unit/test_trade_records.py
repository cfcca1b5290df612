"""stream_records() of validated trade dicts is stamp() + to_record() of the same trades as models:
same ids, same bytes."""

from __future__ import annotations

import json
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from tradestream.trade import (
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    RawTrade,
    Trade,
    TradeFields,
    stamp,
    stream_records,
)

RECEIVED = 1_718_900_000_500

symbols = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 .:_\-/^=&]{0,12}", fullmatch=True)
# Wide on purpose: below 1e-4 the record's JSON of a float is not Python's repr.
prices = st.one_of(
    st.floats(min_value=5e-324, max_value=1e300, allow_nan=False, allow_infinity=False),
    st.floats(min_value=1e-7, max_value=1e-3),
    st.decimals(min_value="0.0001", max_value=100_000, places=4).map(float),
)
volumes = st.one_of(st.just(0.0), prices)
conditions = st.one_of(st.none(), st.lists(st.text(min_size=1, max_size=6), max_size=3))
raw_trades = st.builds(
    RawTrade,
    s=symbols,
    p=st.one_of(prices, st.integers(min_value=1, max_value=10**6)),
    v=volumes,
    t=st.integers(min_value=MIN_EPOCH_MS, max_value=MAX_EPOCH_MS),
    c=conditions,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(raw_trades, max_size=8).flatmap(lambda ts: st.permutations(ts + ts[:2])))
def test_records_match_stamped_trades_byte_for_byte(raws: list[RawTrade]) -> None:
    # GIVEN any frame, duplicates included (they need distinct occurrences)
    # WHEN it becomes records both ways (as dicts, with c left out when None half the time)
    dicts = [
        cast(TradeFields, raw.model_dump(exclude_none=i % 2 == 0)) for i, raw in enumerate(raws)
    ]
    records = stream_records(dicts, RECEIVED)
    trades = stamp(raws, RECEIVED)
    # THEN ids, partition keys and bytes are identical, and the bytes decode to the trade
    assert records == [(t.id, t.s, t.to_record()) for t in trades]
    assert [Trade.from_record(data) for _, _, data in records] == trades


def test_identical_trades_in_one_frame_get_distinct_ids_and_keep_their_numbers() -> None:
    # GIVEN two identical fills and integer numbers (as a strict validator may keep them)
    trade: TradeFields = {"s": "AAPL", "p": 190, "v": 5, "t": 1_718_900_000_000, "c": None}
    # WHEN they are made records
    (first_id, _, first), (second_id, _, _) = stream_records([trade, trade.copy()], RECEIVED)
    # THEN their ids differ, the numbers are floats and c, being None, is left out
    assert first_id != second_id
    assert json.loads(first) == {
        "s": "AAPL",
        "p": 190.0,
        "v": 5.0,
        "t": 1_718_900_000_000,
        "id": first_id,
        "rt": RECEIVED,
    }
    assert b'"p":190.0' in first
