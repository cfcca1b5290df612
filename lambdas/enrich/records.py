"""From a Firehose record to a trade, and from a trade and its prediction to a lake line.

A record's data is a trade when it is one JSON trade object: the edge's record (with ``id`` and
``rt``) or a plain Finnhub trade as any other producer puts it (``{"s","p","v","t","c"}``, other
fields ignored). What the edge would have stamped is filled in here (``Trade.from_record``): a
missing ``id`` by the edge's rule, a missing ``rt`` from the record's
``approximateArrivalTimestamp`` (epoch ms, the Kinesis arrival time), so a redelivered record
gives the same lake line. A record without ``rt`` and without an arrival time is not a trade.

Lake line: the trade's fields, then ``prediction`` and ``model_version`` (both null when inference
failed, with ``prediction_error`` saying why), as one JSON object terminated by a newline, so the
objects Firehose concatenates are NDJSON that Athena's JSON SerDe reads line by line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import (
    KinesisFirehoseRecord,
)

from lambdas.enrich.firehose import payload
from tradestream.trade import ReceiveTimeMissingError, Trade, TradeError


@dataclass(frozen=True)
class Prediction:
    value: Any  # a JSON value, as the model returned it
    model_version: str


@dataclass(frozen=True)
class InferenceFailure:
    reason: str  # e.g. "ThrottlingException after 4 attempts"


Inference = Prediction | InferenceFailure


def decode_trade(record: KinesisFirehoseRecord) -> Trade:
    """The record's trade; TradeError (a ValueError) for anything that is not one."""
    try:
        data = payload(record)
    except ValueError as exc:
        raise TradeError(str(exc)) from exc
    try:
        return Trade.from_record(data)
    except ReceiveTimeMissingError as unstamped:
        # Another producer's trade: received when it reached the stream, as the hot store says.
        arrival = record.get("approximateArrivalTimestamp")
        if arrival is None:
            raise TradeError(
                f"{unstamped}, and the record has no approximateArrivalTimestamp"
            ) from unstamped
        return unstamped.received_at(arrival)


def lake_line(trade: Trade, inference: Inference) -> bytes:
    line: dict[str, Any] = trade.model_dump(mode="json", exclude_none=True)
    if isinstance(inference, Prediction):
        line["prediction"] = inference.value
        line["model_version"] = inference.model_version
    else:
        line["prediction"] = None
        line["model_version"] = None
        line["prediction_error"] = inference.reason
    return json.dumps(line, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def partition_keys(trade: Trade) -> dict[str, str]:
    """``symbol`` and ``date`` (UTC day of the trade time, not of its arrival).

    Symbols such as "BINANCE:BTCUSDT" or "IC MARKETS:1" hold characters that are awkward in S3
    keys and Hive partition values, so the symbol is percent-encoded (as Hive escapes partition
    paths): "AAPL" stays "AAPL", "BINANCE:BTCUSDT" becomes "BINANCE%3ABTCUSDT". The exact symbol
    stays in the record's ``s``.
    """
    day = datetime.fromtimestamp(trade.t / 1000, UTC).strftime("%Y-%m-%d")
    return {"symbol": quote(trade.s, safe=""), "date": day}


def model_input(trade: Trade) -> bytes:
    """The raw trade as the endpoint takes it: one element of the request's JSON array."""
    return trade.to_record()
