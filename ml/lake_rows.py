"""Training rows from lake objects, wherever the objects are: in S3 (``data.lake_history``) or
on disk where a SageMaker training job's S3Prefix channel downloaded them (``directory_history``).

One reader for both, so a job trains on exactly the rows a local retrain would: NDJSON (one
enriched trade per line, what Firehose writes, optionally GZIP, recognised by its magic) and
Parquet (``.parquet`` or the ``PAR1`` magic). Rows are deduplicated by ``id`` (the lake is
at-least-once) and ordered by trade time; rows that are not trades are skipped and counted,
never fatal: one bad line must not block a retrain.

Runs inside the SageMaker scikit-learn container (1.2-1: Python 3.9), so it imports only the
standard library (pyarrow only for Parquet objects) and keeps to Python 3.9 syntax.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

KEPT_FIELDS = ("s", "p", "v", "t", "c", "id")  # what a training row keeps of a lake line
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"

log = logging.getLogger(__name__)


@dataclass
class LakeStats:
    objects: int = 0
    lines: int = 0
    skipped: int = 0  # not a trade (bad JSON, a missing or invalid field)
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def history(objects: Iterable[tuple[str, bytes]], stats: LakeStats) -> list[dict[str, Any]]:
    """Distinct trades of ``(key, body)`` objects, ordered by trade time. A key is the object's
    path below the data prefix or with it: only its Hive ``name=value`` segments are read."""
    by_key: dict[str, dict[str, Any]] = {}
    for key, body in objects:
        stats.objects += 1
        for record in _records(key, body):
            stats.lines += 1
            row = _training_row(record, _partitions(key))
            if isinstance(row, str):
                stats.skipped += 1
                stats.reasons[row] = stats.reasons.get(row, 0) + 1
                continue
            identity = str(row.get("id") or (row["s"], row["p"], row["v"], row["t"]))
            if identity in by_key:
                stats.duplicates += 1
            by_key[identity] = row
    if stats.skipped:
        log.warning("lake rows skipped: %s", stats.reasons)
    # Stable: trades of the same millisecond keep the order in which they were read.
    return sorted(by_key.values(), key=lambda row: int(row["t"]))


def directory_history(root: Path, stats: LakeStats) -> list[dict[str, Any]]:
    """Distinct trades of the files below ``root``, read in key order as S3 lists them."""
    return history(_files(root), stats)


def _files(root: Path) -> Iterator[tuple[str, bytes]]:
    # S3 lists keys in UTF-8 byte order; sorting the relative paths the same way keeps which
    # copy of a redelivered trade wins (the last read) the same as lake_history's.
    found = [
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".")
    ]
    for key, path in sorted(found, key=lambda item: item[0].encode()):
        yield key, path.read_bytes()


def _records(key: str, body: bytes) -> Iterator[Any]:
    if key.endswith(".parquet") or body[:4] == PARQUET_MAGIC:
        import pyarrow.parquet as pq  # only Parquet objects need it

        yield from pq.read_table(io.BytesIO(body)).to_pylist()
        return
    if body[:2] == GZIP_MAGIC:
        body = gzip.decompress(body)
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            yield None  # counted as a skipped row by the caller


def _partitions(key: str) -> dict[str, str]:
    """Hive-style ``name=value`` path segments; the lake percent-encodes the symbol."""
    parts = (segment.split("=", 1) for segment in key.split("/")[:-1] if "=" in segment)
    return {name: unquote(value) for name, value in parts}


def _training_row(record: Any, partitions: dict[str, str]) -> dict[str, Any] | str:
    """The trade's kept fields, or the reason it is not a usable trade."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if "s" not in record and "symbol" in partitions:  # Parquet partitioned by symbol
        record = {**record, "s": partitions["symbol"]}
    try:
        price, volume, when = float(record["p"]), float(record["v"]), int(record["t"])
    except KeyError as exc:
        return f"missing {exc.args[0]}"
    except (TypeError, ValueError):
        return "p, v or t not a number"
    if not isinstance(record.get("s"), str) or not record["s"]:
        return "missing s"
    if not (math.isfinite(price) and math.isfinite(volume)) or price <= 0 or volume < 0:
        return "p or v out of range"
    row = {name: record[name] for name in KEPT_FIELDS if record.get(name) is not None}
    row.update(p=price, v=volume, t=when)
    return row
