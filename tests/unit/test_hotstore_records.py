"""Decoding one Kinesis event record: its locator, and poison classification by reason code."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from lambdas.hotstore.records import (
    CORRUPT_AGGREGATE,
    INVALID_BASE64,
    INVALID_JSON,
    INVALID_TRADE,
    PoisonRecordError,
    RecordRef,
    user_records,
)
from tests.support.hotstore import decode_record
from tests.support.kpl import corrupt_aggregate
from tradestream import kpl
from tradestream.trade import Trade

EVENTS = Path(__file__).parents[1] / "events"


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def _ref(data: str) -> RecordRef:
    return RecordRef("arn", "shardId-000000000000", "1", "AAPL", 1.0, data)


def test_ref_carries_the_locator_and_the_shard_from_the_event_id() -> None:
    # GIVEN the first record of the sample batch WHEN its locator is read
    raw = _event("kinesis_hotstore_batch.json")["Records"][0]
    ref = RecordRef.from_event_record(raw)

    # THEN everything needed to find it again is there, data untouched
    assert ref == RecordRef(
        event_source_arn="arn:aws:kinesis:us-east-1:123456789012:stream/trades",
        shard_id="shardId-000000000000",
        sequence_number="49654263013845209432479583210495063582461049102541406210",
        partition_key="AAPL",
        approximate_arrival_timestamp=1718900000.163,
        data=raw["kinesis"]["data"],
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("not base64!", INVALID_BASE64),
        (base64.b64encode(b"AAPL,187.25,20,1718900001001").decode(), INVALID_JSON),
        (base64.b64encode(b"\xff\xfe\x00").decode(), INVALID_JSON),
        (base64.b64encode(b"").decode(), INVALID_JSON),
        (base64.b64encode(b'{"type":"ping"}').decode(), INVALID_TRADE),
        (base64.b64encode(b"[1, 2]").decode(), INVALID_TRADE),
        (
            base64.b64encode(
                b'{"s":"AAPL","p":-1,"v":1,"t":1718900000123,"id":"%s","rt":1718900000123}'
                % (b"a" * 32)
            ).decode(),
            INVALID_TRADE,
        ),
    ],
)
def test_poison_records_are_classified_by_reason(data: str, code: str) -> None:
    # GIVEN a record that can never become a trade WHEN it is decoded
    with pytest.raises(PoisonRecordError) as error:
        decode_record(_ref(data))

    # THEN it is poison with the reason's code and a message
    assert error.value.code == code
    assert error.value.message


def test_sample_events_hold_real_trade_records_and_exactly_the_documented_poison() -> None:
    # GIVEN the sample events WHEN every record is decoded
    outcomes: dict[str, list[str]] = {}
    for name in ("kinesis_hotstore_batch.json", "kinesis_hotstore_poison.json"):
        for raw in _event(name)["Records"]:
            ref = RecordRef.from_event_record(raw)
            try:
                trade = decode_record(ref)
            except PoisonRecordError as exc:
                outcomes.setdefault(name, []).append(exc.code)
                continue
            # THEN valid data is byte for byte what Trade.to_record() produces
            assert base64.b64decode(ref.data) == trade.to_record()
            assert isinstance(trade, Trade)
            outcomes.setdefault(name, []).append("ok")

    # AND the batch is all trades; the poison event mixes 3 poison records into 3 trades
    assert outcomes["kinesis_hotstore_batch.json"] == ["ok"] * 8
    assert outcomes["kinesis_hotstore_poison.json"] == [
        "ok",
        INVALID_JSON,
        "ok",
        INVALID_TRADE,
        INVALID_TRADE,
        "ok",
    ]


def test_an_aggregate_opens_into_its_user_records_and_a_plain_record_is_one() -> None:
    # GIVEN a KPL aggregate of two user records under their own keys, and a plain record
    data = kpl.aggregate([("AAPL", b'{"a":1}'), ("MSFT", b'{"b":2}')])
    aggregate = _ref(base64.b64encode(data).decode())
    plain = _ref(base64.b64encode(b'{"c":3}').decode())

    # WHEN their user records are read
    # THEN the aggregate gives each with its key and position, the plain record itself
    assert [(u.partition_key, u.data, u.sub_sequence_number) for u in user_records(aggregate)] == [
        ("AAPL", b'{"a":1}', 0),
        ("MSFT", b'{"b":2}', 1),
    ]
    assert user_records(plain) == [kpl.UserRecord("AAPL", b'{"c":3}')]


def test_a_corrupt_aggregate_is_poison_as_a_whole() -> None:
    # GIVEN the KPL magic and digest around a message that does not parse
    ref = _ref(base64.b64encode(corrupt_aggregate()).decode())

    # WHEN its user records are read THEN it is poison, with the format's code
    with pytest.raises(PoisonRecordError) as error:
        user_records(ref)
    assert error.value.code == CORRUPT_AGGREGATE == "KplAggregateCorrupt"
