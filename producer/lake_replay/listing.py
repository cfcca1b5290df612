"""Which objects under the data prefix a replay reads: only the folders that can hold a match.

The lake's prefix (``infra/cloudformation/lake.yaml``: ``trades/symbol=.../date=.../``, the
layout ``tradestream.local.firehose.prefix`` evaluates) is walked one folder level at a time with
``ListObjectsV2`` and ``Delimiter="/"``. A Hive partition folder (``name=value/``) that the
selection rules out is never listed (``Selection.admits_partition``); one it admits is walked the
same way. Any other folder (e.g. Firehose's default ``yyyy/MM/dd/HH/`` layout) holds nothing to
decide on, so everything below it is listed flat, in one paginated listing.

A leaf is a folder's objects with the partitions above them; objects are in key order, which for
Firehose's names (``<stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>``) is the order written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from producer.lake_replay.selection import Selection
from tradestream.retry import error_code

Partitions = tuple[tuple[str, str], ...]  # (name, decoded value), outermost first


class LakeListingError(Exception):
    """The lake cannot be listed; ``code`` is AWS's error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Leaf:
    prefix: str
    partitions: Partitions
    keys: tuple[str, ...]

    def partition(self, name: str) -> str | None:
        return next((value for key, value in self.partitions if key == name), None)


@dataclass
class ListingStats:
    list_calls: int = 0
    partitions_pruned: int = 0  # partition folders skipped unlisted by the selection


class LakeListing:
    def __init__(self, s3: Any, bucket: str, prefix: str, selection: Selection) -> None:
        self.stats = ListingStats()
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix
        self._selection = selection

    async def leaves(self) -> list[Leaf]:
        return await self._walk(self._prefix, ())

    async def _walk(self, prefix: str, partitions: Partitions) -> list[Leaf]:
        folders, keys = await self._list(prefix, delimited=True)
        leaves = [Leaf(prefix, partitions, tuple(keys))] if keys else []
        for folder in folders:
            name, is_partition, raw = folder[len(prefix) : -1].partition("=")
            if not is_partition or not name:
                _, below = await self._list(folder, delimited=False)
                if below:
                    leaves.append(Leaf(folder, partitions, tuple(below)))
                continue
            value = unquote(raw)  # the enrich function percent-encodes symbols, as Hive does
            if self._selection.admits_partition(name, value):
                leaves += await self._walk(folder, (*partitions, (name, value)))
            else:
                self.stats.partitions_pruned += 1
        return leaves

    async def _list(self, prefix: str, *, delimited: bool) -> tuple[list[str], list[str]]:
        folders: list[str] = []
        keys: list[str] = []
        options = {"Bucket": self._bucket, "Prefix": prefix}
        if delimited:
            options["Delimiter"] = "/"
        try:
            async for page in self._s3.get_paginator("list_objects_v2").paginate(**options):
                self.stats.list_calls += 1
                folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
                keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        except ClientError as exc:
            raise LakeListingError(_advice(exc, self._bucket), error_code(exc)) from exc
        return folders, keys


def _advice(exc: ClientError, bucket: str) -> str:
    code = error_code(exc)
    if code == "NoSuchBucket":
        return f"bucket {bucket!r} not found: set BUCKET_NAME (or --bucket) to the lake's bucket"
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"not allowed to list {bucket!r} ({code}): check the credentials and s3:ListBucket"
    return f"listing {bucket!r} failed with {code}: {exc}"
