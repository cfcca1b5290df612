"""Training data: history from the seeded synthetic source, or what the pipeline captured in the
lake: S3 NDJSON objects (optionally GZIP, one enriched trade per line, what Firehose writes) and
Parquet objects (``.parquet``, e.g. after an Athena CTAS or a Firehose format conversion)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import Iterator
from typing import Any

from producer.sources import SyntheticSource
from tradestream import aws

SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
TRADE_FIELDS = ("s", "p", "v", "t", "c")
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"


def synthetic_history(n_trades: int, seed: int) -> list[dict[str, Any]]:
    """``n_trades`` distinct trades of the seeded synthetic market, in emission order."""

    async def collect() -> list[dict[str, Any]]:
        seen: set[str] = set()
        rows: list[dict[str, Any]] = []
        async for frame in SyntheticSource(SYMBOLS, seed=seed, max_trades=n_trades):
            for trade in frame:
                if trade.id not in seen:  # the source re-sends duplicates, as Finnhub does
                    seen.add(trade.id)
                    rows.append(_raw(trade.model_dump()))
        return rows

    return asyncio.run(collect())


def lake_history(bucket: str, prefix: str = "trades/") -> list[dict[str, Any]]:
    """Distinct trades from the lake's data prefix, ordered by trade time."""
    s3 = aws.client("s3")
    by_id: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            for record in _records(entry["Key"], body):
                by_id[str(record.get("id", len(by_id)))] = _raw(record)
    return sorted(by_id.values(), key=lambda r: int(r["t"]))


def _records(key: str, body: bytes) -> Iterator[dict[str, Any]]:
    if key.endswith(".parquet") or body[:4] == PARQUET_MAGIC:
        import pyarrow.parquet as pq  # only needed for Parquet objects

        yield from pq.read_table(io.BytesIO(body)).to_pylist()
        return
    if body[:2] == GZIP_MAGIC:
        body = gzip.decompress(body)
    for line in body.splitlines():
        if line.strip():
            yield json.loads(line)


def _raw(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in TRADE_FIELDS if k in record}
