"""One Kinesis event record: where it came from, and the trade it carries or why it is poison.

A record carries a trade when its data is one JSON trade object: the edge's record (with ``id``
and ``rt``) or a plain Finnhub trade as any other producer puts it (``{"s","p","v","t","c"}``,
other fields ignored). What the edge would have stamped is filled in here (``Trade.from_record``):
a missing ``id`` by the edge's rule, a missing ``rt`` from the record's
``kinesis.approximateArrivalTimestamp``, so a redelivered record is the same item again.

A record is *poison* when no retry can ever make it succeed (not base64, not JSON, not a valid
trade, or a trade DynamoDB cannot store). Everything else that goes wrong is transient.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)

from tradestream.trade import ReceiveTimeMissingError, Trade, TradeError

INVALID_BASE64 = "InvalidBase64"
INVALID_JSON = "InvalidJson"
INVALID_TRADE = "InvalidTrade"
UNSTORABLE_TRADE = "UnstorableTrade"


class PoisonRecordError(ValueError):
    """A record that can never be written; ``code`` says why (one of the constants above)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RecordRef:
    """Everything needed to find a record again in its stream, report it, or replay it."""

    event_source_arn: str
    shard_id: str
    sequence_number: str
    partition_key: str
    approximate_arrival_timestamp: float
    data: str  # base64, exactly as received

    @classmethod
    def from_event_record(cls, raw: dict[str, Any]) -> RecordRef:
        record = KinesisStreamRecord(raw)
        # eventID is "<shardId>:<sequenceNumber>"; it is the only place the event names the shard.
        shard_id, _, _ = record.event_id.partition(":")
        return cls(
            event_source_arn=record.event_source_arn,
            shard_id=shard_id,
            sequence_number=record.kinesis.sequence_number,
            partition_key=record.kinesis.partition_key,
            approximate_arrival_timestamp=record.kinesis.approximate_arrival_timestamp,
            data=record.kinesis.data,
        )


def decode_trade(ref: RecordRef) -> Trade:
    """The trade in a record, or PoisonRecordError saying why there is none."""
    try:
        data = base64.b64decode(ref.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PoisonRecordError(INVALID_BASE64, f"data is not base64: {exc}") from exc
    try:
        try:
            return Trade.from_record(data)
        except ReceiveTimeMissingError as unstamped:
            # Another producer's trade: received when it reached the stream (seconds, ms precision).
            return unstamped.received_at(round(ref.approximate_arrival_timestamp * 1000))
    except TradeError as exc:
        raise PoisonRecordError(_trade_error_code(exc), str(exc)) from exc


def _trade_error_code(exc: TradeError) -> str:
    # from_record raises TradeError from pydantic's ValidationError, whose error types tell
    # "not JSON at all" (a different producer, corruption) from "JSON but not a trade".
    errors = getattr(exc.__cause__, "errors", None)
    if callable(errors) and any(e.get("type") == "json_invalid" for e in errors()):
        return INVALID_JSON
    return INVALID_TRADE
