"""The hot path's stages: the event source mapping into the hotstore function, and DynamoDB."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tradestream.capacity.assumptions import Deployed, Measured
from tradestream.capacity.costs import Cost, lambda_costs, total
from tradestream.capacity.load import Load
from tradestream.capacity.prices import GB, HOURS_PER_MONTH, SECONDS_PER_MONTH, Prices
from tradestream.capacity.stream import StreamNeeds
from tradestream.limits import (
    DYNAMODB_ITEM_STORAGE_OVERHEAD_BYTES,
    DYNAMODB_WRITE_UNIT_BYTES,
    LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES,
)

SECONDS_PER_DAY = 86_400
# What a Kinesis record costs in a Lambda event beyond its data (base64 makes data 4/3):
# sequence number, partition key, arrival time, event ids and ARNs.
_EVENT_RECORD_OVERHEAD_BYTES = 500


@dataclass(frozen=True)
class Mapping:
    """The event source mapping into the hotstore function."""

    parallelization_factor: int
    concurrency: int
    invocations_per_second: float
    costs: tuple[Cost, ...]


@dataclass(frozen=True)
class DynamoDB:
    write_units_per_item: int
    write_units_per_second: int
    stored_gb: float
    provisioned_write_capacity_units: int
    provisioned_usd: float  # the alternative: provisioned capacity at auto scaling's target
    costs: tuple[Cost, ...]


def parallelization_factor(trades_per_second: int, shards: int, per_invocation: float) -> int:
    """Concurrent batches per shard for the hotstore to keep up with a shard's trades."""
    return max(1, math.ceil(trades_per_second / shards / per_invocation))


def mapping(
    load: Load, needs: StreamNeeds, prices: Prices, deployed: Deployed, measured: Measured
) -> Mapping:
    per_invocation = measured.hotstore_trades_per_second_per_invocation
    factor = parallelization_factor(load.trades_per_second, needs.shards, per_invocation)
    records_per_shard = float(needs.records_per_second) / needs.shards
    event_bytes = needs.record_bytes * 4 / 3 + _EVENT_RECORD_OVERHEAD_BYTES
    # Each of a shard's `factor` batches is sent when full (BatchSize records, or the 6 MB
    # payload) or when the batching window ends, and carries at least one record.
    per_shard = min(
        records_per_shard,
        max(
            factor / deployed.mapping_batching_window_seconds,
            records_per_shard / deployed.mapping_batch_size,
            records_per_shard * event_bytes / LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES,
        ),
    )
    invocations = per_shard * needs.shards
    return Mapping(
        parallelization_factor=factor,
        concurrency=needs.shards * factor,
        invocations_per_second=invocations,
        costs=lambda_costs(
            "hotstore",
            invocations,
            load.trades_per_second / per_invocation,
            deployed.hotstore_memory_mb,
            prices,
        ),
    )


def item_bytes(load: Load, measured: Measured) -> int:
    return load.avg_trade_bytes + measured.dynamodb_item_extra_bytes


def dynamodb(load: Load, prices: Prices, deployed: Deployed, measured: Measured) -> DynamoDB:
    size = item_bytes(load, measured)
    units_per_item = math.ceil(size / DYNAMODB_WRITE_UNIT_BYTES)
    units = load.trades_per_second * units_per_item  # the hotstore writes one item per trade
    write_units = units * SECONDS_PER_MONTH
    retained = load.trades_per_second * deployed.hotstore_ttl_days * SECONDS_PER_DAY
    stored_gb = retained * (size + DYNAMODB_ITEM_STORAGE_OVERHEAD_BYTES) / GB
    storage = (
        Cost(
            "dynamodb",
            f"storage ({deployed.hotstore_ttl_days} days of trades)",
            stored_gb,
            "GB-month",
            prices.dynamodb_storage_gb_month,
        ),
        Cost(
            "dynamodb",
            "point-in-time recovery",
            stored_gb,
            "GB-month",
            prices.dynamodb_pitr_gb_month,
        ),
    )
    on_demand = Cost(
        "dynamodb",
        "on-demand write request units",
        write_units / 1e6,
        "million WRU",
        prices.dynamodb_write_request_units_per_million,
    )
    capacity = math.ceil(units / measured.provisioned_target_utilization)
    provisioned_usd = capacity * HOURS_PER_MONTH * prices.dynamodb_write_capacity_unit_hour
    return DynamoDB(
        write_units_per_item=units_per_item,
        write_units_per_second=units,
        stored_gb=stored_gb,
        provisioned_write_capacity_units=capacity,
        provisioned_usd=provisioned_usd + total(storage),
        costs=(on_demand, *storage),
    )
