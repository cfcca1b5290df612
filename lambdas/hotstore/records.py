"""One Kinesis event record: where it came from, the user records it carries, and the trade each
carries or why it is poison.

A Kinesis record is either a KPL aggregate (``tradestream.kpl``: many user records, each with its
own partition key, in one record) or a plain record, which is one user record of its own. The
event source mapping delivers aggregates as they are, as Lambda does; ``user_records`` opens
them. An aggregate's user records share its sequence number and arrival time; each has its
sub-sequence number (its position in the aggregate).

A user record carries a trade when its data is one JSON trade object: the edge's record (with
``id`` and ``rt``) or a plain Finnhub trade as any other producer puts it
(``{"s","p","v","t","c"}``, other fields ignored). What the edge would have stamped is filled
in here (``Trade.from_record``): a missing ``id`` by the edge's rule, a missing ``rt`` from the
Kinesis record's ``kinesis.approximateArrivalTimestamp``, so a redelivered record is the same
item again.

A user record is *poison* when no retry can ever make it succeed (not JSON, not a valid trade, or
a trade DynamoDB cannot store). A Kinesis record is poison as a whole when its data is not base64
or it is a corrupt aggregate (the KPL magic and digest, but a message that does not parse): then
no user record of it can be known. Everything else that goes wrong is transient.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)

from tradestream.kpl import AggregateFormatError, UserRecord, deaggregate
from tradestream.trade import ReceiveTimeMissingError, Trade, TradeError

INVALID_BASE64 = "InvalidBase64"
CORRUPT_AGGREGATE = AggregateFormatError.code
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


def user_records(ref: RecordRef) -> list[UserRecord]:
    """The user records of a Kinesis record, in order (a plain record is one, under its own
    partition key), or PoisonRecordError when none can be known: the record is poison whole."""
    try:
        data = base64.b64decode(ref.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PoisonRecordError(INVALID_BASE64, f"data is not base64: {exc}") from exc
    try:
        return deaggregate(data, ref.partition_key)
    except AggregateFormatError as exc:
        raise PoisonRecordError(CORRUPT_AGGREGATE, str(exc)) from exc


def decode_trade(user: UserRecord, *, arrival_s: float) -> Trade:
    """The trade in a user record, or PoisonRecordError saying why there is none; ``arrival_s``
    is its Kinesis record's ApproximateArrivalTimestamp (epoch seconds)."""
    try:
        try:
            return Trade.from_record(user.data)
        except ReceiveTimeMissingError as unstamped:
            # Another producer's trade: received when it reached the stream (seconds, ms precision).
            return unstamped.received_at(round(arrival_s * 1000))
    except TradeError as exc:
        raise PoisonRecordError(_trade_error_code(exc), str(exc)) from exc


def _trade_error_code(exc: TradeError) -> str:
    # from_record raises TradeError from pydantic's ValidationError, whose error types tell
    # "not JSON at all" (a different producer, corruption) from "JSON but not a trade".
    errors = getattr(exc.__cause__, "errors", None)
    if callable(errors) and any(e.get("type") == "json_invalid" for e in errors()):
        return INVALID_JSON
    return INVALID_TRADE
