"""Training data: history from the seeded synthetic source, or what the pipeline captured in the
lake (S3 NDJSON objects, optionally GZIP, one enriched trade per line)."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

from producer.sources import SyntheticSource
from tradestream import aws

SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
TRADE_FIELDS = ("s", "p", "v", "t", "c")


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
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            for line in body.splitlines():
                if line.strip():
                    record = json.loads(line)
                    by_id[str(record.get("id", len(by_id)))] = _raw(record)
    return sorted(by_id.values(), key=lambda r: int(r["t"]))


def _raw(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in TRADE_FIELDS if k in record}
