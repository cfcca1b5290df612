"""The load a plan is for, checked before anything is sized."""

from __future__ import annotations

from dataclasses import dataclass

from tradestream.capacity.assumptions import DEPLOYED
from tradestream.limits import KINESIS_MAX_PARTITION_KEY_CHARS, KINESIS_MAX_RECORD_BYTES

# The KPL's default AggregationMaxSize: 51,200 bytes, two PUT payload units exactly.
DEFAULT_AGGREGATE_BYTES = 51_200
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
    aggregate_target_bytes: int = DEFAULT_AGGREGATE_BYTES

    def __post_init__(self) -> None:
        if self.trades_per_second < 1:
            raise PlanInputError("trades per second must be at least 1")
        if self.symbols < 1:
            raise PlanInputError("symbols must be at least 1")
        if not 1 <= self.partition_key_bytes <= KINESIS_MAX_PARTITION_KEY_CHARS:
            raise PlanInputError("a partition key is 1 to 256 characters")
        if not 2 <= self.avg_trade_bytes <= KINESIS_MAX_RECORD_BYTES - 64:
            raise PlanInputError("a trade must fit one Kinesis record (1 MiB with its key)")
        if not 256 <= self.aggregate_target_bytes <= KINESIS_MAX_RECORD_BYTES:
            raise PlanInputError("the aggregate target size is 256 bytes to 1 MiB")
