"""Trade -> DynamoDB item: key format, exact numbers, TTL, and trades DynamoDB could not store."""

from __future__ import annotations

from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeDeserializer

from lambdas.hotstore.items import MAX_ITEM_BYTES, item_size, key_of, sort_key, to_item
from lambdas.hotstore.records import UNSTORABLE_TRADE, PoisonRecordError
from tradestream.trade import Trade

TRADE = Trade(
    s="AAPL",
    p=187.23,
    v=100,
    t=1718900000123,
    c=("1", "12"),
    id="d18b60a364506c5500c34c96fac92b52",
    rt=1718900000151,
)


def _plain(item: dict[str, dict[str, object]]) -> dict[str, object]:
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in item.items()}


def test_item_has_every_attribute_with_exact_decimals_and_the_time_first_sort_key() -> None:
    # GIVEN a trade WHEN it is mapped with a 30-day TTL at a known write time
    item = to_item(TRADE, ttl_days=30, ingested_at_ms=1718900000200)

    # THEN every attribute is there, typed as DynamoDB stores it
    assert item == {
        "s": {"S": "AAPL"},
        "sk": {"S": "1718900000123#d18b60a364506c5500c34c96fac92b52"},
        "p": {"N": "187.23"},
        "v": {"N": "100.0"},
        "t": {"N": "1718900000123"},
        "c": {"L": [{"S": "1"}, {"S": "12"}]},
        "id": {"S": "d18b60a364506c5500c34c96fac92b52"},
        "rt": {"N": "1718900000151"},
        "ingested_at": {"N": "1718900000200"},
        "expires_at": {"N": str(1718900000 + 30 * 86400)},
    }
    # AND the price reads back as the decimal the edge sent, not its binary float expansion
    assert _plain(item)["p"] == Decimal("187.23")
    assert Decimal(TRADE.p) != Decimal("187.23")
    assert key_of(item) == ("AAPL", "1718900000123#d18b60a364506c5500c34c96fac92b52")


def test_sort_keys_order_by_time_then_id_and_tell_same_millisecond_trades_apart() -> None:
    # GIVEN two trades in the same millisecond and one a millisecond later
    first = TRADE.model_copy(update={"id": "b" * 32})
    second = TRADE.model_copy(update={"id": "a" * 32})
    later = TRADE.model_copy(update={"t": TRADE.t + 1, "id": "0" * 32})

    # WHEN their sort keys are computed
    keys = [sort_key(first), sort_key(second), sort_key(later)]

    # THEN same-ms trades differ, and string order is time order
    assert len(set(keys)) == 3
    assert sorted(keys) == [sort_key(second), sort_key(first), sort_key(later)]
    assert all(len(k.partition("#")[0]) == 13 for k in keys)


def test_replayed_trade_maps_to_the_same_key_and_ttl_whatever_its_write_time() -> None:
    # GIVEN the same trade written twice, a minute apart, re-received later at the edge
    replay = TRADE.model_copy(update={"rt": TRADE.rt + 500})
    a = to_item(TRADE, ttl_days=7, ingested_at_ms=1)
    b = to_item(replay, ttl_days=7, ingested_at_ms=60_001)

    # THEN key and TTL are the same (the TTL counts from the trade time)
    assert key_of(a) == key_of(b)
    assert a["expires_at"] == b["expires_at"] == {"N": str(1718900000 + 7 * 86400)}


def test_conditions_absent_stay_absent_and_empty_conditions_stay_an_empty_list() -> None:
    # GIVEN trades without conditions and with an empty list WHEN mapped
    without = to_item(TRADE.model_copy(update={"c": None}), ttl_days=1, ingested_at_ms=0)
    empty = to_item(TRADE.model_copy(update={"c": ()}), ttl_days=1, ingested_at_ms=0)

    # THEN the item mirrors the record: no attribute, or an empty list
    assert "c" not in without
    assert empty["c"] == {"L": []}


@pytest.mark.parametrize("update", [{"p": 1e-300}, {"v": 1e200}])
def test_numbers_outside_dynamodb_range_are_unstorable(update: dict[str, float]) -> None:
    # GIVEN a valid trade whose price or volume DynamoDB cannot represent
    trade = TRADE.model_copy(update=update)

    # WHEN it is mapped THEN it is poison with the UnstorableTrade code
    with pytest.raises(PoisonRecordError) as error:
        to_item(trade, ttl_days=1, ingested_at_ms=0)
    assert error.value.code == UNSTORABLE_TRADE


def test_an_item_over_400_kb_is_unstorable_instead_of_failing_its_whole_call() -> None:
    # GIVEN a trade whose condition list makes the item exceed DynamoDB's item size limit
    trade = TRADE.model_copy(update={"c": ("x" * 1000,) * 410})

    # WHEN it is mapped THEN it is poison, and the estimate was over the limit
    with pytest.raises(PoisonRecordError) as error:
        to_item(trade, ttl_days=1, ingested_at_ms=0)
    assert error.value.code == UNSTORABLE_TRADE
    assert str(MAX_ITEM_BYTES) in str(error.value)


def test_item_size_is_an_upper_bound_of_names_plus_values() -> None:
    # GIVEN a small item of a string, a number and a list
    item = {"ab": {"S": "xyz"}, "n": {"N": "1.5"}, "l": {"L": [{"S": "q"}]}}

    # WHEN sized THEN names + string bytes + 21 per number + 3 + (1 + element) per list
    assert item_size(item) == (2 + 3) + (1 + 21) + (1 + 3 + 1 + 1)
