"""What the stream costs a month: provisioned (shard-hours, PUT payload units) against on-demand
(stream-hours, data in and out), and the cheaper of the two."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tradestream.capacity.assumptions import Deployed
from tradestream.capacity.costs import Cost, total
from tradestream.capacity.prices import (
    GB,
    HOURS_PER_MONTH,
    KINESIS_ON_DEMAND_BILLING_INCREMENT_BYTES,
    SECONDS_PER_MONTH,
    Prices,
)
from tradestream.capacity.stream import StreamNeeds


@dataclass(frozen=True)
class Kinesis:
    stream: StreamNeeds
    mode: str  # the cheaper of PROVISIONED and ON_DEMAND
    provisioned: tuple[Cost, ...]
    on_demand: tuple[Cost, ...]

    @property
    def provisioned_usd(self) -> float:
        return total(self.provisioned)

    @property
    def on_demand_usd(self) -> float:
        return total(self.on_demand)

    @property
    def costs(self) -> tuple[Cost, ...]:
        return self.provisioned if self.mode == "PROVISIONED" else self.on_demand


def kinesis(needs: StreamNeeds, prices: Prices, deployed: Deployed) -> Kinesis:
    shard_hours = needs.shards * HOURS_PER_MONTH
    put_units = float(needs.put_payload_units_per_second) * SECONDS_PER_MONTH
    provisioned = (
        Cost("kinesis", "shard-hours", shard_hours, "shard-hour", prices.kinesis_shard_hour),
        Cost(
            "kinesis",
            "PUT payload units (25 KB)",
            put_units / 1e6,
            "million units",
            prices.kinesis_put_units_per_million,
        ),
    )
    billed = math.ceil(needs.record_bytes / KINESIS_ON_DEMAND_BILLING_INCREMENT_BYTES)
    ingested_gb = (
        float(needs.records_per_second)
        * billed
        * KINESIS_ON_DEMAND_BILLING_INCREMENT_BYTES
        * SECONDS_PER_MONTH
        / GB
    )
    retrieved_gb = ingested_gb * deployed.stream_consumers  # each consumer reads everything
    on_demand = (
        Cost(
            "kinesis",
            "on-demand stream-hours",
            HOURS_PER_MONTH,
            "stream-hour",
            prices.kinesis_on_demand_stream_hour,
        ),
        Cost(
            "kinesis",
            "on-demand data in (1 KB per record)",
            ingested_gb,
            "GB",
            prices.kinesis_on_demand_ingested_per_gb,
        ),
        Cost(
            "kinesis",
            "on-demand data out (both consumers)",
            retrieved_gb,
            "GB",
            prices.kinesis_on_demand_retrieved_per_gb,
        ),
    )
    provisioned_usd = total(provisioned)
    on_demand_usd = total(on_demand)
    mode = "PROVISIONED" if provisioned_usd <= on_demand_usd else "ON_DEMAND"
    return Kinesis(needs, mode, provisioned, on_demand)
