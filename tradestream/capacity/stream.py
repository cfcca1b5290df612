"""Shards for a load, from the per-shard limits, with and without KPL aggregation.

Without aggregation every trade is one Kinesis record, so a shard takes at most 1,000 trades/s
(its records limit) however small they are. With aggregation a record carries many trades, and
the 1 MiB/s byte limit binds instead: about 6,600 trades/s of 150 bytes per shard. Both
consumers (the event source mapping and the delivery stream) read every shard, sharing its
2 MiB/s of reads; the mapping also needs the shards that keep its parallelization factor within
10 at the hotstore's measured throughput.

Rates that decide a shard count are kept as exact fractions, so 1,000 trades/s is one shard and
1,001 two, with no floating-point doubt at the boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from tradestream.aggregation import PUT_PAYLOAD_UNIT_BYTES
from tradestream.capacity.packing import Packed, fits_one, pack
from tradestream.limits import (
    KINESIS_SHARD_READ_BYTES_PER_SECOND,
    KINESIS_SHARD_WRITE_BYTES_PER_SECOND,
    KINESIS_SHARD_WRITE_RECORDS_PER_SECOND,
    LAMBDA_ESM_MAX_PARALLELIZATION_FACTOR,
)

# A shard count depends on the aggregates' size, which depends on the shard count (a shard with
# fewer trades fills fewer per linger period); a few rounds settle it.
_MAX_ROUNDS = 32


@dataclass(frozen=True)
class StreamNeeds:
    """What one load asks of the stream; every rate is per second."""

    aggregated: bool
    trades_per_record: int
    record_bytes: int  # data blob plus partition key, as Kinesis counts a record
    records_per_second: Fraction
    shards: int
    shards_by_limit: dict[str, int]

    @property
    def bytes_per_second(self) -> Fraction:
        return self.records_per_second * self.record_bytes

    @property
    def binding_limit(self) -> str:
        """The limit that sets the shard count, or that none does beyond the one shard."""
        name = max(self.shards_by_limit, key=lambda limit: self.shards_by_limit[limit])
        return name if self.shards_by_limit[name] > 1 else "none (one shard)"

    @property
    def put_payload_units_per_record(self) -> int:
        return math.ceil(self.record_bytes / PUT_PAYLOAD_UNIT_BYTES)

    @property
    def put_payload_units_per_second(self) -> Fraction:
        return self.records_per_second * self.put_payload_units_per_record


def shards_for(
    records_per_second: Fraction,
    record_bytes: int,
    *,
    trades_per_second: int,
    consumers: int,
    trades_per_second_per_invocation: float,
) -> dict[str, int]:
    """The shards each limit asks for on its own."""
    write_bytes = records_per_second * record_bytes
    consumer_capacity = LAMBDA_ESM_MAX_PARALLELIZATION_FACTOR * trades_per_second_per_invocation
    return {
        "write records/s": math.ceil(records_per_second / KINESIS_SHARD_WRITE_RECORDS_PER_SECOND),
        "write bytes/s": math.ceil(write_bytes / KINESIS_SHARD_WRITE_BYTES_PER_SECOND),
        "read bytes/s": math.ceil(consumers * write_bytes / KINESIS_SHARD_READ_BYTES_PER_SECOND),
        "mapping parallelization": math.ceil(trades_per_second / consumer_capacity),
    }


def unaggregated(
    trades_per_second: int,
    trade_bytes: int,
    key_bytes: int,
    *,
    consumers: int,
    trades_per_second_per_invocation: float,
) -> StreamNeeds:
    record_bytes = trade_bytes + key_bytes
    records = Fraction(trades_per_second)
    by_limit = shards_for(
        records,
        record_bytes,
        trades_per_second=trades_per_second,
        consumers=consumers,
        trades_per_second_per_invocation=trades_per_second_per_invocation,
    )
    return StreamNeeds(False, 1, record_bytes, records, max(1, *by_limit.values()), by_limit)


def aggregated(
    trades_per_second: int,
    trade_bytes: int,
    key_bytes: int,
    *,
    target_bytes: int,
    linger_seconds: float,
    consumers: int,
    trades_per_second_per_invocation: float,
) -> StreamNeeds:
    """One aggregate open per shard (as the KPL packs per shard), sent when the next trade would
    pass ``target_bytes`` or when it has waited ``linger_seconds``, whichever comes first. A trade
    too large for the target goes alone, unaggregated, as the KPL sends it."""
    if not fits_one(trade_bytes, key_bytes, target_bytes):
        alone = unaggregated(
            trades_per_second,
            trade_bytes,
            key_bytes,
            consumers=consumers,
            trades_per_second_per_invocation=trades_per_second_per_invocation,
        )
        return replace(alone, aggregated=True)
    full = pack(trade_bytes, key_bytes, target_bytes)
    shards = 1
    for _ in range(_MAX_ROUNDS):
        packed = _filled(full, trades_per_second / shards * linger_seconds, trade_bytes, key_bytes)
        records = Fraction(trades_per_second, packed.trades)
        by_limit = shards_for(
            records,
            packed.record_bytes,
            trades_per_second=trades_per_second,
            consumers=consumers,
            trades_per_second_per_invocation=trades_per_second_per_invocation,
        )
        needed = max(1, *by_limit.values())
        if needed <= shards:
            return StreamNeeds(True, packed.trades, packed.record_bytes, records, shards, by_limit)
        shards = needed
    raise AssertionError("the shard count did not settle")  # sizes only grow: it always does


def _filled(full: Packed, trades_per_linger: float, trade_bytes: int, key_bytes: int) -> Packed:
    if trades_per_linger >= full.trades:
        return full
    count = max(1, math.floor(trades_per_linger))
    return pack(trade_bytes, key_bytes, full.record_bytes, limit=count)
