"""AWS's list prices the planner uses, per Region, with the date they were read and where from.

Only the Regions in :data:`PRICES` are priced; any other is refused (:class:`UnknownRegionError`)
rather than guessed, since prices differ by Region in ways no one multiplier captures.

How these were read (2026-12-07): this project's machines have no live web access, so each value
comes from stored copies of the AWS pricing pages named in ``source``, or restatements of them,
and is cross-checked where an independent copy derived from the AWS Price List API exists
(infracost's golden test files, ``internal/providers/terraform/aws/testdata/*_test.golden``,
give the same Kinesis shard-hour, PUT unit and on-demand prices, and Lambda's request and
GB-second prices). DynamoDB's on-demand price is the one since AWS halved it on 2024-11-01.
Check the pages before relying on a total: prices change.

"GB" in a price is 2^30 bytes, as AWS bills data volumes; a month is 730 hours, as the AWS
Pricing Calculator counts one.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GB = 1024**3
KINESIS_ON_DEMAND_BILLING_INCREMENT_BYTES = 1024  # on-demand: "rounded up to the nearest 1 KB"
FIREHOSE_BILLING_INCREMENT_BYTES = 5 * 1024  # "billed per GB ingested in 5KB increments"

PRICES_READ_ON = "2026-12-07"

KINESIS_SOURCE = "https://aws.amazon.com/kinesis/data-streams/pricing/"
FIREHOSE_SOURCE = "https://aws.amazon.com/firehose/pricing/"
LAMBDA_SOURCE = "https://aws.amazon.com/lambda/pricing/"
DYNAMODB_SOURCE = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
S3_SOURCE = "https://aws.amazon.com/s3/pricing/"
SAGEMAKER_SOURCE = "https://aws.amazon.com/sagemaker/pricing/"


class UnknownRegionError(ValueError):
    """A Region the price table has no prices for."""

    code = "UnknownRegion"

    def __init__(self, region: str) -> None:
        known = ", ".join(sorted(PRICES))
        super().__init__(
            f"no prices for region {region!r}: the price table knows {known} "
            "(tradestream/capacity/prices.py; add a Region there with its sources)"
        )


@dataclass(frozen=True)
class Prices:
    """One Region's prices in USD, each per the unit its name ends with."""

    region: str
    # Kinesis Data Streams, provisioned mode
    kinesis_shard_hour: float
    kinesis_put_units_per_million: float
    # Kinesis Data Streams, on-demand (standard) mode
    kinesis_on_demand_stream_hour: float
    kinesis_on_demand_ingested_per_gb: float
    kinesis_on_demand_retrieved_per_gb: float
    # Amazon Data Firehose, Kinesis Data Streams as the source (first 500 TB a month)
    firehose_ingested_per_gb: float
    firehose_dynamic_partitioning_per_gb: float
    firehose_dynamic_partitioning_per_1000_objects: float
    # Lambda, x86
    lambda_requests_per_million: float
    lambda_gb_second: float
    # DynamoDB, Standard table class
    dynamodb_write_request_units_per_million: float
    dynamodb_write_capacity_unit_hour: float
    dynamodb_storage_gb_month: float
    dynamodb_pitr_gb_month: float
    # S3 Standard (first 50 TB a month)
    s3_storage_gb_month: float
    s3_put_per_1000: float
    # SageMaker hosting
    sagemaker_instance_hour: dict[str, float]
    sagemaker_serverless_second_per_gb_memory: float
    sagemaker_serverless_data_per_gb: float  # in and out, each


US_EAST_1 = Prices(
    region="us-east-1",
    kinesis_shard_hour=0.015,
    kinesis_put_units_per_million=0.014,
    kinesis_on_demand_stream_hour=0.04,
    kinesis_on_demand_ingested_per_gb=0.08,
    kinesis_on_demand_retrieved_per_gb=0.04,
    firehose_ingested_per_gb=0.029,
    firehose_dynamic_partitioning_per_gb=0.02,
    firehose_dynamic_partitioning_per_1000_objects=0.005,
    lambda_requests_per_million=0.20,
    lambda_gb_second=0.0000166667,
    dynamodb_write_request_units_per_million=0.625,
    dynamodb_write_capacity_unit_hour=0.00065,
    dynamodb_storage_gb_month=0.25,
    dynamodb_pitr_gb_month=0.20,
    s3_storage_gb_month=0.023,
    s3_put_per_1000=0.005,
    sagemaker_instance_hour={"ml.t2.medium": 0.056, "ml.m5.large": 0.115},
    # 2048 MB costs $0.00004 a second: $0.00002 per second for each GB of memory configured.
    sagemaker_serverless_second_per_gb_memory=0.00002,
    sagemaker_serverless_data_per_gb=0.016,
)

PRICES = {US_EAST_1.region: US_EAST_1}

SOURCES = {
    "kinesis": KINESIS_SOURCE,
    "firehose": FIREHOSE_SOURCE,
    "lambda": LAMBDA_SOURCE,
    "dynamodb": DYNAMODB_SOURCE,
    "s3": S3_SOURCE,
    "sagemaker": SAGEMAKER_SOURCE,
}


def prices_for(region: str) -> Prices:
    try:
        return PRICES[region]
    except KeyError:
        raise UnknownRegionError(region) from None
