"""Read back what the pipeline wrote, for the demo summary and the tests: counts that reconcile."""

from __future__ import annotations

import statistics
from typing import Any

from tradestream import aws


def count_items(table: str, dynamodb: Any | None = None) -> int:
    """Distinct items in the table (each item is one trade id, by the key design)."""
    client = dynamodb or aws.client("dynamodb")
    total = 0
    for page in client.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        total += int(page["Count"])
    return total


def latencies_ms(table: str, dynamodb: Any | None = None) -> list[int]:
    """End-to-end latency per trade: edge receive time (rt) to the DynamoDB write (ingested_at)."""
    client = dynamodb or aws.client("dynamodb")
    values: list[int] = []
    pages = client.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="rt, ingested_at"
    )
    for page in pages:
        for item in page["Items"]:
            if "rt" in item and "ingested_at" in item:
                values.append(int(item["ingested_at"]["N"]) - int(item["rt"]["N"]))
    return values


def percentiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    if len(values) == 1:
        return {"p50": float(values[0]), "p99": float(values[0])}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1)}


def queue_depth(queue_url: str, sqs: Any | None = None) -> int:
    """Messages in a queue, visible or in flight (moto and AWS both keep these counters)."""
    client = sqs or aws.client("sqs")
    attributes = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
