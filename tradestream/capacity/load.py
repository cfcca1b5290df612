"""The load a plan is for, checked before anything is sized."""

from __future__ import annotations

from dataclasses import dataclass

from tradestream.aggregation import (
    AGGREGATION_DEFAULT_MAX_BYTES,
    AGGREGATION_MAX_MAX_BYTES,
    AGGREGATION_MIN_MAX_BYTES,
)
from tradestream.capacity.assumptions import DEPLOYED
from tradestream.limits import KINESIS_MAX_PARTITION_KEY_CHARS, KINESIS_MAX_RECORD_BYTES

DEFAULT_TRADE_BYTES = 150


class PlanInputError(ValueError):
    """A load the planner cannot size (a trade larger than a Kinesis record, no trades...)."""

    code = "InvalidPlanInput"


@dataclass(frozen=True)
class Load:
    trades_per_second: int
    avg_trade_bytes: int = DEFAULT_TRADE_BYTES
    symbols: int = DEPLOYED.default_symbols
    partition_key_bytes: int = 4  # "AAPL"
    # The producer's AGGREGATION_MAX_BYTES: 51,200 by default, the KPL's, two PUT payload units.
    aggregate_target_bytes: int = AGGREGATION_DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.trades_per_second < 1:
            raise PlanInputError("trades per second must be at least 1")
        if self.symbols < 1:
            raise PlanInputError("symbols must be at least 1")
        if not 1 <= self.partition_key_bytes <= KINESIS_MAX_PARTITION_KEY_CHARS:
            raise PlanInputError("a partition key is 1 to 256 characters")
        if not 2 <= self.avg_trade_bytes <= KINESIS_MAX_RECORD_BYTES - 64:
            raise PlanInputError("a trade must fit one Kinesis record (1 MiB with its key)")
        if (
            not AGGREGATION_MIN_MAX_BYTES
            <= self.aggregate_target_bytes
            <= AGGREGATION_MAX_MAX_BYTES
        ):
            raise PlanInputError(
                "the aggregate size is what AGGREGATION_MAX_BYTES takes: "
                f"{AGGREGATION_MIN_MAX_BYTES:,} to {AGGREGATION_MAX_MAX_BYTES:,} bytes"
            )
