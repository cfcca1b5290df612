"""How many trades a KPL aggregated record holds, and its size, from the format itself.

The sizes are those of :class:`tradestream.kpl.Aggregate` (the producer's own encoder): magic and
MD5 digest (20 bytes), the partition-key table, each user record's field tags and varints, and
the aggregate's own partition key, which Kinesis counts toward the record and the shard limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tradestream.kpl import Aggregate


@dataclass(frozen=True)
class Packed:
    trades: int  # user records in one aggregate
    record_bytes: int  # the Kinesis record: data blob plus partition key

    @property
    def bytes_per_trade(self) -> float:
        return self.record_bytes / self.trades


def fits_one(trade_bytes: int, key_bytes: int, target_bytes: int) -> bool:
    return Aggregate().fits("k" * key_bytes, b"x" * trade_bytes, target_bytes)


@lru_cache(maxsize=256)
def pack(trade_bytes: int, key_bytes: int, target_bytes: int, limit: int | None = None) -> Packed:
    """An aggregate filled with ``trade_bytes`` trades under one ``key_bytes`` partition key
    until the next would pass ``target_bytes``, or until it holds ``limit`` trades."""
    key, data = "k" * key_bytes, b"x" * trade_bytes
    packed = Aggregate()
    while (limit is None or packed.count < limit) and packed.fits(key, data, target_bytes):
        packed.add(key, data)
    if packed.count == 0:
        raise ValueError(f"a {trade_bytes}-byte trade does not fit a {target_bytes}-byte aggregate")
    return Packed(packed.count, packed.size)
