"""The read side's sort-key bounds and cursor, against the writer's sort key (no network)."""

from __future__ import annotations

import pytest

from ingest_api.errors import InvalidQueryError
from ingest_api.reads import TimeRange, decode_cursor, encode_cursor, epoch_ms, time_range
from lambdas.hotstore.items import sort_key
from tradestream.trade import RawTrade, stamp

T0 = 1_718_000_000_000


def _key_at(t: int, id_: str) -> str:
    [trade] = stamp([RawTrade(s="AAPL", p=1.0, v=1, t=t)], received_ms=t)
    return sort_key(trade.model_copy(update={"id": id_}))


@pytest.mark.parametrize("id_", ["0" * 32, "f" * 32, "~" * 64, "Z" * 16])
def test_a_range_holds_every_trade_of_its_end_milliseconds_and_no_other(id_: str) -> None:
    # GIVEN the range T0..T0+1 WHEN the writer's keys of the milliseconds around it are tested
    window = TimeRange(T0, T0 + 1)
    # THEN both end milliseconds are inside whatever the id, the neighbours outside
    assert window.holds(_key_at(T0, id_))
    assert window.holds(_key_at(T0 + 1, id_[:63]))
    assert not window.holds(_key_at(T0 - 1, id_))
    assert not window.holds(_key_at(T0 + 2, id_))


def test_a_cursor_round_trips_and_is_bound_to_its_symbol_and_range() -> None:
    key = {"s": {"S": "BINANCE:BTCUSDT"}, "sk": {"S": f"{T0:013d}#{'a' * 32}"}}
    cursor = encode_cursor(key)
    assert "=" not in cursor
    assert "/" not in cursor
    assert "+" not in cursor
    assert decode_cursor(cursor, "BINANCE:BTCUSDT", TimeRange(T0, T0)) == key
    with pytest.raises(InvalidQueryError, match="another symbol"):
        decode_cursor(cursor, "AAPL", TimeRange(T0, T0))
    with pytest.raises(InvalidQueryError, match="outside"):
        decode_cursor(cursor, "BINANCE:BTCUSDT", TimeRange(T0 + 1, T0 + 2))


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1718000000000", T0),
        ("2024-06-10T06:13:20Z", T0),
        ("2024-06-10T06:13:20.5", T0 + 500),  # no offset: UTC
        ("2024-06-10T08:13:20+02:00", T0),
        ("2024-06-10t06:13:20z", T0),  # RFC 3339 allows lower case
        # outside what a 13-digit key holds: clamped to that end, an open range there
        ("-5", 0),
        ("1900-01-01T00:00:00Z", 0),
        ("99999999999999", 9_999_999_999_999),
        ("9" * 5000, 9_999_999_999_999),
    ],
)
def test_times_are_epoch_ms_or_iso_8601(text: str, ms: int) -> None:
    assert epoch_ms(text, default=0, name="from") == ms


@pytest.mark.parametrize("text", ["soon", "", "1e12", "2024-13-01T00:00:00Z"])
def test_times_that_are_neither_are_refused(text: str) -> None:
    with pytest.raises(InvalidQueryError):
        epoch_ms(text, default=0, name="from")


def test_an_open_range_covers_every_13_digit_key() -> None:
    window = time_range(None, None)
    assert window.holds(f"{0:013d}#x")
    assert window.holds(f"{9_999_999_999_999:013d}#~")
