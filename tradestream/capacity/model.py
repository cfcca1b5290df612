"""A load's needs and monthly cost, stage by stage, with and without KPL aggregation.

Each stage works out its quantities (shards, invocations, write units, bytes, objects,
instances) from the load, the stream's shape, the deployed settings and the measured figures
(tradestream.capacity.assumptions), then prices them (tradestream.capacity.prices). The steps
are spelled out, with a worked example, in docs/capacity.md.

What no stage prices: the producer's and the ingest service's ECS tasks, CloudWatch (logs,
metrics, alarms, dashboard), KMS requests, data transfer, Athena and Glue, free tiers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tradestream.capacity import stream
from tradestream.capacity.assumptions import DEPLOYED, MEASURED, Deployed, Measured
from tradestream.capacity.prices import (
    FIREHOSE_BILLING_INCREMENT_BYTES,
    GB,
    HOURS_PER_MONTH,
    KINESIS_ON_DEMAND_BILLING_INCREMENT_BYTES,
    SECONDS_PER_MONTH,
    Prices,
)
from tradestream.capacity.stream import StreamNeeds
from tradestream.limits import (
    DYNAMODB_ITEM_STORAGE_OVERHEAD_BYTES,
    DYNAMODB_ON_DEMAND_TABLE_MAX_WRITE_UNITS_PER_SECOND,
    DYNAMODB_PARTITION_MAX_WRITE_UNITS_PER_SECOND,
    DYNAMODB_WRITE_UNIT_BYTES,
    KINESIS_MAX_PARTITION_KEY_CHARS,
    KINESIS_MAX_RECORD_BYTES,
    LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES,
)

SECONDS_PER_DAY = 86_400
# The KPL's default AggregationMaxSize: 51,200 bytes, two PUT payload units exactly.
DEFAULT_AGGREGATE_BYTES = 51_200
DEFAULT_TRADE_BYTES = 150
# What a Kinesis record costs in a Lambda event beyond its data (base64 makes data 4/3):
# sequence number, partition key, arrival time, event ids and ARNs.
_EVENT_RECORD_OVERHEAD_BYTES = 500
# The inference stack's InstanceCount parameter goes up to 10.
_MAX_REALTIME_INSTANCES = 10


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


@dataclass(frozen=True)
class Cost:
    """One priced line: ``quantity`` units a month at ``unit_usd`` each."""

    component: str
    item: str
    quantity: float
    unit: str
    unit_usd: float

    @property
    def monthly_usd(self) -> float:
        return self.quantity * self.unit_usd


@dataclass(frozen=True)
class Kinesis:
    stream: StreamNeeds
    mode: str  # the cheaper of PROVISIONED and ON_DEMAND
    provisioned: tuple[Cost, ...]
    on_demand: tuple[Cost, ...]

    @property
    def provisioned_usd(self) -> float:
        return sum(c.monthly_usd for c in self.provisioned)

    @property
    def on_demand_usd(self) -> float:
        return sum(c.monthly_usd for c in self.on_demand)

    @property
    def costs(self) -> tuple[Cost, ...]:
        return self.provisioned if self.mode == "PROVISIONED" else self.on_demand


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


@dataclass(frozen=True)
class Lake:
    """Firehose (reading the stream, partitioning, writing) and the S3 objects it writes."""

    firehose_billed_gb_per_month: float
    lake_gb_per_month: float  # NDJSON before compression
    stored_gb_per_month: float  # gzip: what the bucket grows by each month
    objects_per_month: float
    enrich_invocations_per_second: float
    enrich_concurrency: int
    firehose_costs: tuple[Cost, ...]
    enrich_costs: tuple[Cost, ...]
    s3_costs: tuple[Cost, ...]


@dataclass(frozen=True)
class Inference:
    invocations_per_second: float
    predictions_per_second: int
    serverless_concurrency: float
    realtime_instances: int
    realtime_instance_type: str
    mode: str  # the cheaper of serverless and realtime
    serverless: tuple[Cost, ...]
    realtime: tuple[Cost, ...]

    @property
    def serverless_usd(self) -> float:
        return sum(c.monthly_usd for c in self.serverless)

    @property
    def realtime_usd(self) -> float:
        return sum(c.monthly_usd for c in self.realtime)

    @property
    def costs(self) -> tuple[Cost, ...]:
        return self.serverless if self.mode == "serverless" else self.realtime


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
        return sum(c.monthly_usd for c in self.costs)


@dataclass(frozen=True)
class Deploy:
    """What to pass `tradestream deploy` for the recommended scenario."""

    stream_mode: str
    shards: int
    inference: str
    region: str

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
    deployed: Deployed = DEPLOYED,
    measured: Measured = MEASURED,
) -> Plan:
    without = scenario(load, _stream(load, deployed, measured, False), prices, deployed, measured)
    with_ = scenario(load, _stream(load, deployed, measured, True), prices, deployed, measured)
    deploy = _deploy(load, with_, prices.region, deployed, measured)
    return Plan(load, prices, without, with_, deploy, _notes(load, with_, deploy, deployed))


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
    lake = _lake(load, needs, prices, deployed, measured)
    return Scenario(
        kinesis=_kinesis(needs, prices, deployed),
        mapping=_mapping(load, needs, prices, deployed, measured),
        dynamodb=_dynamodb(load, prices, deployed, measured),
        lake=lake,
        inference=_inference(load, lake, prices, deployed, measured),
    )


# --- Kinesis --------------------------------------------------------------------------------------


def _kinesis(needs: StreamNeeds, prices: Prices, deployed: Deployed) -> Kinesis:
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
    provisioned_usd = sum(c.monthly_usd for c in provisioned)
    on_demand_usd = sum(c.monthly_usd for c in on_demand)
    mode = "PROVISIONED" if provisioned_usd <= on_demand_usd else "ON_DEMAND"
    return Kinesis(needs, mode, provisioned, on_demand)


# --- the event source mapping and the hotstore function -------------------------------------------


def parallelization_factor(trades_per_second: int, shards: int, per_invocation: float) -> int:
    """Concurrent batches per shard for the hotstore to keep up with a shard's trades."""
    return max(1, math.ceil(trades_per_second / shards / per_invocation))


def _mapping(
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
        costs=_lambda_costs(
            "hotstore",
            invocations,
            load.trades_per_second / per_invocation,
            deployed.hotstore_memory_mb,
            prices,
        ),
    )


def _lambda_costs(
    function: str,
    invocations_per_second: float,
    busy_seconds_per_second: float,
    memory_mb: int,
    prices: Prices,
) -> tuple[Cost, ...]:
    requests = invocations_per_second * SECONDS_PER_MONTH
    gb_seconds = busy_seconds_per_second * SECONDS_PER_MONTH * memory_mb / 1024
    return (
        Cost(
            function,
            "Lambda requests",
            requests / 1e6,
            "million requests",
            prices.lambda_requests_per_million,
        ),
        Cost(
            function,
            f"Lambda duration ({memory_mb} MB)",
            gb_seconds,
            "GB-second",
            prices.lambda_gb_second,
        ),
    )


# --- DynamoDB -------------------------------------------------------------------------------------


def item_bytes(load: Load, measured: Measured) -> int:
    return load.avg_trade_bytes + measured.dynamodb_item_extra_bytes


def _dynamodb(load: Load, prices: Prices, deployed: Deployed, measured: Measured) -> DynamoDB:
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
        provisioned_usd=provisioned_usd + sum(c.monthly_usd for c in storage),
        costs=(on_demand, *storage),
    )


# --- Firehose, the enrich function, S3 ------------------------------------------------------------


def _lake(
    load: Load, needs: StreamNeeds, prices: Prices, deployed: Deployed, measured: Measured
) -> Lake:
    trades = load.trades_per_second
    # Firehose bills the Kinesis records it reads, each rounded up to 5 KB; with aggregation a
    # record is an aggregate, so the rounding is spread over its trades.
    data_bytes = needs.record_bytes - load.partition_key_bytes
    billed = math.ceil(data_bytes / FIREHOSE_BILLING_INCREMENT_BYTES)
    billed_gb = (
        float(needs.records_per_second)
        * billed
        * FIREHOSE_BILLING_INCREMENT_BYTES
        * SECONDS_PER_MONTH
        / GB
    )
    line_bytes = load.avg_trade_bytes + measured.lake_line_extra_bytes
    lake_bytes_per_second = trades * line_bytes
    lake_gb = lake_bytes_per_second * SECONDS_PER_MONTH / GB
    # Dynamic partitioning keeps a buffer per partition (symbol, date): each is written when it
    # holds 64 MiB (before compression) or after 300 s, whichever comes first.
    per_symbol = lake_bytes_per_second / load.symbols
    flushes = max(1 / deployed.s3_buffer_interval_seconds, per_symbol / deployed.s3_buffer_bytes)
    objects = load.symbols * flushes * SECONDS_PER_MONTH
    firehose = (
        Cost(
            "firehose",
            "ingestion (5 KB per Kinesis record)",
            billed_gb,
            "GB",
            prices.firehose_ingested_per_gb,
        ),
        Cost(
            "firehose",
            "dynamic partitioning, data",
            lake_gb,
            "GB",
            prices.firehose_dynamic_partitioning_per_gb,
        ),
        Cost(
            "firehose",
            "dynamic partitioning, objects",
            objects / 1000,
            "1,000 objects",
            prices.firehose_dynamic_partitioning_per_1000_objects,
        ),
    )
    # The transform is invoked per source shard with up to 1 MB of (deaggregated) trades, or
    # when the buffer interval ends.
    source_per_shard = trades * load.avg_trade_bytes / needs.shards
    per_shard = max(
        1 / deployed.processor_buffer_interval_seconds,
        source_per_shard / deployed.processor_buffer_bytes,
    )
    enrich_invocations = per_shard * needs.shards
    stored_gb = lake_gb * measured.lake_gzip_ratio
    s3 = (
        Cost(
            "s3",
            "PUT requests (one per object)",
            objects / 1000,
            "1,000 requests",
            prices.s3_put_per_1000,
        ),
        Cost(
            "s3",
            "storage of one month's lake (gzip)",
            stored_gb,
            "GB-month",
            prices.s3_storage_gb_month,
        ),
    )
    return Lake(
        firehose_billed_gb_per_month=billed_gb,
        lake_gb_per_month=lake_gb,
        stored_gb_per_month=stored_gb,
        objects_per_month=objects,
        enrich_invocations_per_second=enrich_invocations,
        enrich_concurrency=needs.shards,
        firehose_costs=firehose,
        enrich_costs=_lambda_costs(
            "enrich",
            enrich_invocations,
            trades / measured.enrich_records_per_second_per_invocation,
            deployed.enrich_memory_mb,
            prices,
        ),
        s3_costs=s3,
    )


# --- SageMaker ------------------------------------------------------------------------------------


def realtime_instances(trades_per_second: int, measured: Measured) -> int:
    per_instance = measured.model_predictions_per_second_per_core * (
        measured.realtime_instance_core_share
    )
    return max(1, math.ceil(trades_per_second / per_instance))


def _inference(
    load: Load, lake: Lake, prices: Prices, deployed: Deployed, measured: Measured
) -> Inference:
    trades = load.trades_per_second
    # One InvokeEndpoint per enrich invocation: its <= 1 MB of trades is one <= 1 MiB chunk.
    calls = lake.enrich_invocations_per_second
    busy_seconds = trades * measured.model_seconds_per_prediction  # per second
    compute_seconds = busy_seconds * SECONDS_PER_MONTH
    memory_gb = deployed.serverless_memory_mb / 1024
    data_gb = (
        trades
        * (load.avg_trade_bytes + measured.prediction_response_bytes)
        * SECONDS_PER_MONTH
        / GB
    )
    serverless = (
        Cost(
            "sagemaker",
            f"serverless compute ({deployed.serverless_memory_mb} MB)",
            compute_seconds,
            "second",
            memory_gb * prices.sagemaker_serverless_second_per_gb_memory,
        ),
        Cost(
            "sagemaker",
            "serverless data in and out",
            data_gb,
            "GB",
            prices.sagemaker_serverless_data_per_gb,
        ),
    )
    instances = realtime_instances(trades, measured)
    instance_type = deployed.realtime_instance_type
    instance_hours = instances * HOURS_PER_MONTH
    realtime = (
        Cost(
            "sagemaker",
            f"real-time {instance_type} instance-hours",
            instance_hours,
            "instance-hour",
            prices.sagemaker_instance_hour[instance_type],
        ),
    )
    serverless_usd = sum(c.monthly_usd for c in serverless)
    realtime_usd = sum(c.monthly_usd for c in realtime)
    cheaper = "realtime" if realtime_usd < serverless_usd else "serverless"
    return Inference(
        invocations_per_second=calls,
        predictions_per_second=trades,
        serverless_concurrency=busy_seconds,  # Little's law: busy seconds per second
        realtime_instances=instances,
        realtime_instance_type=instance_type,
        mode=cheaper if instances <= _MAX_REALTIME_INSTANCES else "serverless",
        serverless=serverless,
        realtime=realtime,
    )


# --- what to deploy, and what to know -------------------------------------------------------------


def _deploy(
    load: Load, chosen: Scenario, region: str, deployed: Deployed, measured: Measured
) -> Deploy:
    shards = max(chosen.shards, deployable_shards(load.trades_per_second, deployed, measured))
    mode = chosen.kinesis.mode if shards <= deployed.max_template_shards else "ON_DEMAND"
    return Deploy(mode, shards, chosen.inference.mode, region)


def deployable_shards(trades_per_second: int, deployed: Deployed, measured: Measured) -> int:
    """Shards the hotstore keeps up with at the parallelization factor the template deploys."""
    per_shard = (
        deployed.mapping_parallelization_factor * measured.hotstore_trades_per_second_per_invocation
    )
    return math.ceil(trades_per_second / per_shard)


def _notes(load: Load, chosen: Scenario, deploy: Deploy, deployed: Deployed) -> tuple[str, ...]:
    notes: list[str] = []
    if deploy.stream_mode == "PROVISIONED" and deploy.shards > chosen.shards:
        notes.append(
            f"the mapping needs ParallelizationFactor {chosen.mapping.parallelization_factor} "
            f"on {chosen.shards} shard(s); hotstore.yaml deploys "
            f"{deployed.mapping_parallelization_factor}, so the deploy line asks for "
            f"{deploy.shards} shards instead"
        )
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
