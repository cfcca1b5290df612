"""Read back what the delivery stream wrote: lake lines, error envelopes, and counts that reconcile.

Delivery is at-least-once (a re-sent trade, or a batch redelivered after a failure, can appear
twice), so the counts that matter are per distinct trade id; the raw line count is kept too.
Objects are decompressed when they are gzip, whatever their extension.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tradestream import aws

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
