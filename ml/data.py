"""Training data: history from the seeded synthetic source, or what the pipeline captured.

- ``synthetic_history``: the seeded market of ``tradestream.synthetic``, generated offline
  (no AWS, no clock), one row per distinct trade, in arrival order. Same seed, same rows.
- ``lake_history``: the lake's objects under a prefix, read through ``tradestream.aws.client``:
  NDJSON (one enriched trade per line, what Firehose writes, optionally GZIP) and Parquet
  (``.parquet`` or the ``PAR1`` magic, e.g. after a Firehose format conversion or an Athena CTAS).
  Rows are deduplicated by ``id`` (the lake is at-least-once) and ordered by trade time; rows that
  are not trades are skipped and counted, never fatal: one bad line must not block a retrain.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tradestream import aws
from tradestream.synthetic import raw_frames
from tradestream.trade import stamp

SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
KEPT_FIELDS = ("s", "p", "v", "t", "c", "id")  # what a training row keeps of a lake line
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
DATA_PREFIX = "trades/"  # the lake template's data prefix; errors/ holds failed records

log = logging.getLogger(__name__)


def synthetic_history(
    n_trades: int, seed: int, symbols: Iterable[str] = SYMBOLS
) -> list[dict[str, Any]]:
    """The first ``n_trades`` distinct trades of the seeded synthetic market, in arrival order."""
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for frame in raw_frames(tuple(symbols), seed):
        # Ids come from the trade alone; the receive time only has to be valid, so it is the
        # frame's own time, which keeps the rows free of the wall clock.
        for trade in stamp(frame, received_ms=max(raw.t for raw in frame)):
            if trade.id in seen:  # the source re-sends trades, as Finnhub does
                continue
            seen.add(trade.id)
            rows.append(trade.model_dump(include=set(KEPT_FIELDS), exclude_none=True))
            if len(rows) == n_trades:
                return rows
    raise AssertionError("unreachable: the synthetic source is endless")


@dataclass
class LakeStats:
    objects: int = 0
    lines: int = 0
    skipped: int = 0  # not a trade (bad JSON, a missing or invalid field)
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def lake_history(
    bucket: str, prefix: str = DATA_PREFIX, *, stats: LakeStats | None = None
) -> list[dict[str, Any]]:
    """Distinct trades from the lake objects under ``prefix``, ordered by trade time."""
    stats = stats if stats is not None else LakeStats()
    s3 = aws.client("s3")
    by_key: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            stats.objects += 1
            for record in _records(key, body, stats):
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


def _records(key: str, body: bytes, stats: LakeStats) -> Iterator[Any]:
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
