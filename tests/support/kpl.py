"""KPL aggregates for the consumer tests, made both ways: by ``tradestream.kpl`` (what our
producer writes) and by aws-kinesis-agg's aggregator (what the field's KPL-format producers write),
so the consumers are shown to read either."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from aws_kinesis_agg.aggregator import RecordAggregator

from tradestream import kpl
from tradestream.trade import Trade

UserRecords = Sequence[tuple[str, bytes]]  # (partition key, data)


def trade_records(trades: Sequence[Trade]) -> list[tuple[str, bytes]]:
    """Each trade as the edge puts it: its record under its symbol."""
    return [(trade.s, trade.to_record()) for trade in trades]


def ours(records: UserRecords) -> tuple[str, bytes]:
    """One aggregate by ``tradestream.kpl``: (the partition key Kinesis stores it under, data)."""
    packed = kpl.Aggregate()
    for key, data in records:
        packed.add(key, data)
    return packed.partition_key, packed.encode()


def theirs(records: UserRecords, max_bytes: int = 1024 * 1024) -> list[tuple[str, bytes]]:
    """aws-kinesis-agg's aggregates of ``records``, cut where its aggregator cuts at
    ``max_bytes``: (partition key, data) of each, as its producers would put them."""
    aggregator = RecordAggregator(max_size=max_bytes)
    full = [a for key, data in records if (a := aggregator.add_user_record(key, data))]
    if last := aggregator.clear_and_get():
        full.append(last)
    out = []
    for aggregate in full:
        partition_key, _, data = aggregate.get_contents()
        out.append((partition_key, data))
    return out


def corrupt_aggregate() -> bytes:
    """The KPL magic and a matching digest around a message that does not parse (a record field
    whose length runs past the end): a corrupt aggregate, not a plain record."""
    message = b"\x0a\x04AAPL\x1a\x7f\x08\x00"
    return kpl.MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()
