"""Decoding Firehose records into trades, lake lines and partition keys."""

from __future__ import annotations

import base64
import json

import pytest
from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import (
    KinesisFirehoseRecord,
)

from lambdas.enrich.records import (
    InferenceFailure,
    Prediction,
    decode_trade,
    lake_line,
    partition_keys,
)
from tradestream.trade import RawTrade, Trade, TradeError, stamp


def trade(symbol: str = "AAPL", t: int = 1_718_900_000_123) -> Trade:
    (stamped,) = stamp([RawTrade(s=symbol, p=187.23, v=100, t=t, c=("1",))], received_ms=t + 5)
    return stamped


def record(data: str) -> KinesisFirehoseRecord:
    return KinesisFirehoseRecord({"recordId": "r1", "data": data})


def test_a_valid_record_decodes_to_its_trade() -> None:
    # GIVEN a record carrying a trade WHEN decoded THEN the trade comes back unchanged
    original = trade()
    assert decode_trade(record(base64.b64encode(original.to_record()).decode())) == original


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("not base64!", "base64"),
        (base64.b64encode(b"not json").decode(), "Invalid JSON"),
        (base64.b64encode(b'{"s":"AAPL","p":-1}').decode(), "p"),
        # A lenient decoder would skip the "*" and find the trade: corrupt data is refused instead.
        ("*" + base64.b64encode(trade().to_record()).decode(), "base64"),
    ],
    ids=["not-base64", "not-json", "not-a-trade", "corrupt-base64"],
)
def test_anything_but_a_trade_is_a_trade_error(data: str, reason: str) -> None:
    # GIVEN a broken record WHEN decoded THEN TradeError says why
    with pytest.raises(TradeError, match=reason):
        decode_trade(record(data))


def test_a_lake_line_is_the_trade_plus_prediction_and_version_newline_terminated() -> None:
    # GIVEN a trade and its prediction WHEN turned into a lake line
    line = lake_line(trade(), Prediction(187.5, "v3"))

    # THEN it is one JSON object and a newline, trade fields first
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    decoded = json.loads(line)
    assert list(decoded) == ["s", "p", "v", "t", "c", "id", "rt", "prediction", "model_version"]
    assert decoded["prediction"] == 187.5
    assert decoded["model_version"] == "v3"
    assert Trade.model_validate(decoded) == trade()


def test_a_failed_inference_gives_null_prediction_and_the_reason() -> None:
    # GIVEN a trade whose inference failed WHEN turned into a lake line
    decoded = json.loads(lake_line(trade(), InferenceFailure("ThrottlingException after 4")))

    # THEN the prediction and version are null and the reason is kept
    assert decoded["prediction"] is None
    assert decoded["model_version"] is None
    assert decoded["prediction_error"] == "ThrottlingException after 4"


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("AAPL", "AAPL"),
        ("BINANCE:BTCUSDT", "BINANCE%3ABTCUSDT"),
        ("IC MARKETS:1", "IC%20MARKETS%3A1"),
        ("BRK/B", "BRK%2FB"),
    ],
)
def test_partition_keys_are_the_escaped_symbol_and_the_utc_trade_date(
    symbol: str, expected: str
) -> None:
    # GIVEN a trade at 23:59:59.999 UTC on 2024-06-20
    late = trade(symbol, t=1_718_927_999_999)

    # WHEN its partition keys are derived THEN the date is the trade's UTC day
    assert partition_keys(late) == {"symbol": expected, "date": "2024-06-20"}
