"""Read back what the pipeline wrote: the hot store, the DLQ and the lake, for the demo summary,
the CLI and the tests, so they all count the same way and their counts reconcile.

Lake delivery is at-least-once (a re-sent trade, or a batch redelivered after a failure, can
appear twice), so the lake counts that matter are per distinct trade id; the raw line count is kept
too. Objects are decompressed when they are gzip, whatever their extension.
"""

from __future__ import annotations

import gzip
import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
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


# --- the lake ---------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class LakeCounts:
    records: int  # lines under the data prefix, duplicates included
    distinct_ids: int  # distinct trade ids among them: the demo's lake_records
    predicted: int  # distinct ids with a non-null prediction: the demo's predicted
    errors: int  # envelopes under the error prefix: the demo's lake_errors
    objects: int
    error_objects: int


def object_bodies(bucket: str, prefix: str, s3: Any | None = None) -> Iterator[tuple[str, bytes]]:
    """(key, body) of every object under ``prefix``, gunzipped, in key order."""
    client = s3 or aws.client("s3")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            body: bytes = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            yield entry["Key"], gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body


def lines(bucket: str, prefix: str, s3: Any | None = None) -> Iterator[dict[str, Any]]:
    """Every JSON line of every object under ``prefix``."""
    for _, body in object_bodies(bucket, prefix, s3):
        for line in body.splitlines():
            if line.strip():
                yield json.loads(line)


def count_lake(
    bucket: str,
    *,
    data_prefix: str = "trades/",
    error_prefix: str = "errors/",
    s3: Any | None = None,
) -> LakeCounts:
    client = s3 or aws.client("s3")
    records = objects = 0
    ids: set[str] = set()
    predicted: set[str] = set()
    for _, body in object_bodies(bucket, data_prefix, client):
        objects += 1
        for raw in body.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            records += 1
            ids.add(str(line.get("id")))
            if line.get("prediction") is not None:
                predicted.add(str(line.get("id")))
    errors = error_objects = 0
    for _, body in object_bodies(bucket, error_prefix, client):
        error_objects += 1
        errors += sum(1 for raw in body.splitlines() if raw.strip())
    return LakeCounts(records, len(ids), len(predicted), errors, objects, error_objects)
