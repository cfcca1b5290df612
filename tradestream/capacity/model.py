"""A load's needs and monthly cost, stage by stage, with and without KPL aggregation.

Each stage works out its quantities (shards, invocations, write units, bytes, objects,
instances) from the load, the stream's shape, the deployed settings and the measured figures
(tradestream.capacity.assumptions), then prices them (tradestream.capacity.prices): the stream
(stream.py sizes it, stream_costs.py prices it), the hot path (hot_path.py) and the lake path
(lake_path.py). The steps are spelled out, with a worked example, in docs/capacity.md.

What no stage prices: the producer's and the ingest service's ECS tasks, CloudWatch (logs,
metrics, alarms, dashboard), KMS requests, data transfer, Athena and Glue, free tiers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tradestream.aggregation import AGGREGATION_DEFAULT
from tradestream.capacity import stream
from tradestream.capacity.assumptions import DEPLOYED, MEASURED, Deployed, Measured
from tradestream.capacity.costs import Cost, total
from tradestream.capacity.hot_path import DynamoDB, Mapping, dynamodb, mapping
from tradestream.capacity.lake_path import Inference, Lake, inference, lake
from tradestream.capacity.load import Load
from tradestream.capacity.prices import Prices
from tradestream.capacity.stream import StreamNeeds
from tradestream.capacity.stream_costs import Kinesis, kinesis
from tradestream.limits import (
    DYNAMODB_ON_DEMAND_TABLE_MAX_WRITE_UNITS_PER_SECOND,
    DYNAMODB_PARTITION_MAX_WRITE_UNITS_PER_SECOND,
    KINESIS_SHARD_WRITE_BYTES_PER_SECOND,
    KINESIS_SHARD_WRITE_RECORDS_PER_SECOND,
    MiB,
)


@dataclass(frozen=True)
class Scenario:
    kinesis: Kinesis
    mapping: Mapping
    dynamodb: DynamoDB
    lake: Lake
    inference: Inference

    @property
    def shards(self) -> int:
        return self.kinesis.stream.shards

    @property
    def costs(self) -> tuple[Cost, ...]:
        lake = self.lake
        return (
            *self.kinesis.costs,
            *self.mapping.costs,
            *self.dynamodb.costs,
            *lake.firehose_costs,
            *lake.enrich_costs,
            *lake.s3_costs,
            *self.inference.costs,
        )

    @property
    def monthly_usd(self) -> float:
        return total(self.costs)


@dataclass(frozen=True)
class Deploy:
    """What to pass `tradestream deploy` for the scenario the producer will run."""

    aggregated: bool  # whether the producer and the ingest service run AGGREGATION=true
    stream_mode: str
    shards: int
    inference: str
    region: str

    @property
    def scenario(self) -> str:
        return "with_aggregation" if self.aggregated else "without_aggregation"

    @property
    def command(self) -> str:
        parts = ["tradestream deploy --target aws", f"--region {self.region}"]
        if self.stream_mode == "ON_DEMAND":
            parts.append("--stream-mode ON_DEMAND")
        else:
            parts.append(f"--shards {self.shards}")
        parts.append(f"--inference {self.inference}")
        return " ".join(parts)


@dataclass(frozen=True)
class Plan:
    load: Load
    prices: Prices
    without_aggregation: Scenario
    with_aggregation: Scenario
    deploy: Deploy
    notes: tuple[str, ...] = field(default=())


def plan(
    load: Load,
    prices: Prices,
    *,
    aggregated: bool = AGGREGATION_DEFAULT,
    deployed: Deployed = DEPLOYED,
    measured: Measured = MEASURED,
) -> Plan:
    """Both scenarios; the deploy line is for the one the producer runs (``aggregated``: its
    AGGREGATION setting, by default the producer's own default)."""
    without = scenario(load, _stream(load, deployed, measured, False), prices, deployed, measured)
    with_ = scenario(load, _stream(load, deployed, measured, True), prices, deployed, measured)
    chosen = with_ if aggregated else without
    deploy = _deploy(load, chosen, aggregated, prices.region, deployed, measured)
    return Plan(load, prices, without, with_, deploy, _notes(load, chosen, deploy, deployed))


def _stream(load: Load, deployed: Deployed, measured: Measured, aggregate: bool) -> StreamNeeds:
    consumers = deployed.stream_consumers
    per_invocation = measured.hotstore_trades_per_second_per_invocation
    if not aggregate:
        return stream.unaggregated(
            load.trades_per_second,
            load.avg_trade_bytes,
            load.partition_key_bytes,
            consumers=consumers,
            trades_per_second_per_invocation=per_invocation,
        )
    return stream.aggregated(
        load.trades_per_second,
        load.avg_trade_bytes,
        load.partition_key_bytes,
        target_bytes=load.aggregate_target_bytes,
        linger_seconds=deployed.producer_linger_ms / 1000,
        consumers=consumers,
        trades_per_second_per_invocation=per_invocation,
    )


def scenario(
    load: Load, needs: StreamNeeds, prices: Prices, deployed: Deployed, measured: Measured
) -> Scenario:
    lake_path = lake(load, needs, prices, deployed, measured)
    return Scenario(
        kinesis=kinesis(needs, prices, deployed),
        mapping=mapping(load, needs, prices, deployed, measured),
        dynamodb=dynamodb(load, prices, deployed, measured),
        lake=lake_path,
        inference=inference(load, lake_path, prices, deployed, measured),
    )


# --- what to deploy, and what to know -------------------------------------------------------------


def _deploy(
    load: Load,
    chosen: Scenario,
    aggregated: bool,
    region: str,
    deployed: Deployed,
    measured: Measured,
) -> Deploy:
    shards = max(chosen.shards, deployable_shards(load.trades_per_second, deployed, measured))
    mode = chosen.kinesis.mode if shards <= deployed.max_template_shards else "ON_DEMAND"
    return Deploy(aggregated, mode, shards, chosen.inference.mode, region)


def deployable_shards(trades_per_second: int, deployed: Deployed, measured: Measured) -> int:
    """Shards the hotstore keeps up with at the parallelization factor the template deploys."""
    per_shard = (
        deployed.mapping_parallelization_factor * measured.hotstore_trades_per_second_per_invocation
    )
    return math.ceil(trades_per_second / per_shard)


def _hot_symbol_notes(load: Load, aggregated: bool) -> list[str]:
    """The symbol is the partition key, so all of a symbol's trades go to one shard: a symbol
    above one shard's write limit is throttled however many shards the stream has. The shard
    counts above assume the load spreads evenly; symbols hash onto shards, so a few busy ones
    can also share a shard."""
    per_symbol = load.trades_per_second / load.symbols
    if not aggregated and per_symbol > KINESIS_SHARD_WRITE_RECORDS_PER_SECOND:
        return [
            f"{per_symbol:,.0f} trades/s per symbol exceed one shard's 1,000 records/s, and a "
            "symbol's trades all go to one shard (its partition key): no shard count helps; "
            "aggregate (AGGREGATION=true) or spread the load over more symbols"
        ]
    per_symbol_bytes = per_symbol * (load.avg_trade_bytes + load.partition_key_bytes)
    if aggregated and per_symbol_bytes > KINESIS_SHARD_WRITE_BYTES_PER_SECOND:
        return [
            f"{per_symbol_bytes / MiB:,.2f} MiB/s per symbol exceed one shard's 1 MiB/s, and a "
            "symbol's trades all go to one shard (its partition key): no shard count helps"
        ]
    return []


def _notes(load: Load, chosen: Scenario, deploy: Deploy, deployed: Deployed) -> tuple[str, ...]:
    notes: list[str] = []
    if deploy.stream_mode == "PROVISIONED" and deploy.shards > chosen.shards:
        notes.append(
            f"the mapping needs ParallelizationFactor {chosen.mapping.parallelization_factor} "
            f"on {chosen.shards} shard(s); hotstore.yaml deploys "
            f"{deployed.mapping_parallelization_factor}, so the deploy line asks for "
            f"{deploy.shards} shards instead"
        )
    notes += _hot_symbol_notes(load, deploy.aggregated)
    dynamodb = chosen.dynamodb
    per_symbol = load.trades_per_second / load.symbols * dynamodb.write_units_per_item
    if per_symbol > DYNAMODB_PARTITION_MAX_WRITE_UNITS_PER_SECOND:
        notes.append(
            f"{per_symbol:,.0f} writes/s per symbol exceed a DynamoDB partition's 1,000 WCU; "
            "the sort key starts with the trade time, so DynamoDB cannot split a hot symbol"
        )
    if dynamodb.write_units_per_second > DYNAMODB_ON_DEMAND_TABLE_MAX_WRITE_UNITS_PER_SECOND:
        notes.append(
            f"{dynamodb.write_units_per_second:,} WRU/s exceed an on-demand table's default "
            "40,000 WRU/s: raise the table's quota first"
        )
    inference = chosen.inference
    if inference.mode == "realtime" and inference.realtime_instances > 1:
        notes.append(
            f"real-time inference needs {inference.realtime_instances} instances: set the "
            "inference stack's InstanceCount (`tradestream deploy` creates one)"
        )
    if (
        inference.mode == "serverless"
        and inference.serverless_concurrency > deployed.serverless_max_concurrency
    ):
        notes.append(
            f"serverless inference needs {math.ceil(inference.serverless_concurrency)} "
            "concurrent invocations: raise the inference stack's ServerlessMaxConcurrency"
        )
    if deploy.shards > deployed.max_template_shards:
        notes.append(
            f"{deploy.shards} shards: the stream template takes at most "
            f"{deployed.max_template_shards}, so the deploy line asks for ON_DEMAND"
        )
    return tuple(notes)
