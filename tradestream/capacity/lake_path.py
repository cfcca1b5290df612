"""The lake path's stages: Firehose, the enrich function, S3, and the SageMaker endpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tradestream.capacity.assumptions import Deployed, Measured
from tradestream.capacity.costs import Cost, lambda_costs, total
from tradestream.capacity.load import Load
from tradestream.capacity.prices import (
    FIREHOSE_BILLING_INCREMENT_BYTES,
    GB,
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    Prices,
)
from tradestream.capacity.stream import StreamNeeds

# The inference stack's InstanceCount parameter goes up to 10.
_MAX_REALTIME_INSTANCES = 10


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
        return total(self.serverless)

    @property
    def realtime_usd(self) -> float:
        return total(self.realtime)

    @property
    def costs(self) -> tuple[Cost, ...]:
        return self.serverless if self.mode == "serverless" else self.realtime


def lake(
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
        enrich_costs=lambda_costs(
            "enrich",
            enrich_invocations,
            trades / measured.enrich_records_per_second_per_invocation,
            deployed.enrich_memory_mb,
            prices,
        ),
        s3_costs=s3,
    )


def realtime_instances(trades_per_second: int, measured: Measured) -> int:
    per_instance = measured.model_predictions_per_second_per_core * (
        measured.realtime_instance_core_share
    )
    return max(1, math.ceil(trades_per_second / per_instance))


def inference(
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
    serverless_usd = total(serverless)
    realtime_usd = total(realtime)
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
