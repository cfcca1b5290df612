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


@dataclass(frozen=True)
class HotStoreSummary:
    items: int  # distinct items, i.e. trades (each item is one trade id, by the key design)
    latencies_ms: list[int]  # per trade: edge receive time (rt) to the DynamoDB write


def hot_store_summary(table: str, dynamodb: Any | None = None) -> HotStoreSummary:
    """The count and the latencies in one Scan: a Scan reads every item whatever it returns, so
    the demo's summary reads the table once instead of once per figure."""
    client = dynamodb or aws.client("dynamodb")
    items = 0
    values: list[int] = []
    pages = client.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="rt, ingested_at"
    )
    for page in pages:
        items += int(page["Count"])
        for item in page["Items"]:
            if "rt" in item and "ingested_at" in item:
                values.append(int(item["ingested_at"]["N"]) - int(item["rt"]["N"]))
    return HotStoreSummary(items, values)


def latencies_ms(table: str, dynamodb: Any | None = None) -> list[int]:
    """End-to-end latency per trade: edge receive time (rt) to the DynamoDB write (ingested_at)."""
    return hot_store_summary(table, dynamodb).latencies_ms


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
            yield entry["Key"], _body(client, bucket, entry["Key"])


def _body(client: Any, bucket: str, key: str) -> bytes:
    """An object's bytes, gunzipped when they are gzip (whatever the key's extension)."""
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body


def lines(bucket: str, prefix: str, s3: Any | None = None) -> Iterator[dict[str, Any]]:
    """Every JSON line of every object under ``prefix``."""
    for _, body in object_bodies(bucket, prefix, s3):
        for line in body.splitlines():
            if line.strip():
                yield json.loads(line)


class LakeTail:
    """The lake read incrementally: each ``refresh`` lists the prefixes and reads only the objects
    it has not read before (objects are immutable once written, as Firehose writes them), so a
    dashboard can follow the lake every second for the cost of one listing plus the new objects.
    ``count_lake`` is one refresh of a new tail: the summary and the dashboard count alike."""

    def __init__(
        self,
        bucket: str,
        *,
        data_prefix: str = "trades/",
        error_prefix: str = "errors/",
        s3: Any | None = None,
    ) -> None:
        self.bucket = bucket
        self.data_prefix = data_prefix
        self.error_prefix = error_prefix
        self._s3 = s3
        self._seen: set[str] = set()
        self._ids: set[str] = set()
        self._predicted: set[str] = set()
        self._records = self._objects = self._errors = self._error_objects = 0

    def refresh(self) -> tuple[LakeCounts, list[dict[str, Any]]]:
        """The counts so far, and the data lines of the objects that are new since last time."""
        if self._s3 is None:  # built once: a follower refreshes every second
            self._s3 = aws.client("s3")
        client = self._s3
        new_lines: list[dict[str, Any]] = []
        for _, body in self._new_bodies(client, self.data_prefix):
            self._objects += 1
            for raw in body.splitlines():
                if not raw.strip():
                    continue
                line = json.loads(raw)
                new_lines.append(line)
                self._records += 1
                self._ids.add(str(line.get("id")))
                if line.get("prediction") is not None:
                    self._predicted.add(str(line.get("id")))
        for _, body in self._new_bodies(client, self.error_prefix):
            self._error_objects += 1
            self._errors += sum(1 for raw in body.splitlines() if raw.strip())
        counts = LakeCounts(
            self._records,
            len(self._ids),
            len(self._predicted),
            self._errors,
            self._objects,
            self._error_objects,
        )
        return counts, new_lines

    def _new_bodies(self, client: Any, prefix: str) -> Iterator[tuple[str, bytes]]:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                if key in self._seen:
                    continue
                body = _body(client, self.bucket, key)
                self._seen.add(key)
                yield key, body


def count_lake(
    bucket: str,
    *,
    data_prefix: str = "trades/",
    error_prefix: str = "errors/",
    s3: Any | None = None,
) -> LakeCounts:
    tail = LakeTail(bucket, data_prefix=data_prefix, error_prefix=error_prefix, s3=s3)
    return tail.refresh()[0]


# --- the hot store, newest first ---------------------------------------------------------------


def newest_items(
    table: str,
    symbol: str,
    limit: int,
    dynamodb: Any | None = None,
    *,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """The symbol's newest ``limit`` trades, oldest first: one Query on the key design (time-first
    sort key, read backwards), the same access path as the read API's /v1/trades/latest. With
    ``after`` (a sort key), only trades sorting after it: a follower reads what is new."""
    client = dynamodb or aws.client("dynamodb")
    condition, values = "s = :s", {":s": {"S": symbol}}
    if after is not None:
        condition, values = "s = :s AND sk > :after", {**values, ":after": {"S": after}}
    items: list[dict[str, Any]] = client.query(
        TableName=table,
        KeyConditionExpression=condition,
        ExpressionAttributeValues=values,
        ScanIndexForward=False,
        Limit=limit,
    )["Items"]
    return [_plain(item) for item in reversed(items)]


def some_symbols(table: str, dynamodb: Any | None = None, *, sample: int = 200) -> set[str]:
    """Symbols seen in a small sample of the table: where a follower starts before it has read
    any trade of its own."""
    client = dynamodb or aws.client("dynamodb")
    page = client.scan(TableName=table, ProjectionExpression="s", Limit=sample)
    return {item["s"]["S"] for item in page["Items"]}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain JSON values (numbers as float or int, lists of strings)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        ((kind, raw),) = value.items()
        if kind == "N":
            out[name] = float(raw) if any(c in raw for c in ".eE") else int(raw)
        elif kind in ("S", "BOOL"):
            out[name] = raw
        elif kind in ("L", "SS"):
            out[name] = [v.get("S", v) if isinstance(v, dict) else v for v in raw]
    return out
