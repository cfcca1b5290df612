"""Retraining on what the pipeline captured: the lake's NDJSON (GZIP) and Parquet objects, read
from moto's S3 over real HTTP."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ml.data import LakeStats, lake_history
from ml.train import train
from tradestream import aws

T0 = 1_700_000_000_000


def lake_line(i: int, symbol: str = "AAPL") -> dict[str, Any]:
    """An enriched trade as the enrich Lambda writes it to the lake."""
    return {
        "s": symbol,
        "p": 100 + (i % 7) / 10,
        "v": i % 5,
        "t": T0 + i * 200,
        "c": ["1"],
        "id": f"{symbol}-{i:08d}",
        "rt": T0 + i * 200 + 5,
        "prediction": 0.0,
        "model_version": "ridge-test",
    }


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def parquet(records: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), buffer)
    return buffer.getvalue()


def test_lake_history_reads_gzip_ndjson_and_parquet_deduplicated_in_time_order(
    aws_env: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN a lake: GZIP NDJSON, plain NDJSON that repeats a trade and holds a bad line,
    # Parquet (one object without the symbol column, which lives in its partition), an error
    s3 = aws.client("s3")
    bucket = f"lake-{unique}"
    s3.create_bucket(Bucket=bucket)
    aapl = [lake_line(i) for i in range(1500)]
    put = s3.put_object
    put(
        Bucket=bucket,
        Key="trades/symbol=AAPL/date=2023-11-14/a.gz",
        Body=gzip.compress(ndjson(aapl)),
    )
    put(
        Bucket=bucket,
        Key="trades/symbol=AAPL/date=2023-11-14/b",
        Body=ndjson(aapl[:1]) + b"{oops\n",
    )
    msft = [lake_line(i, "MSFT") for i in range(1500)]
    put(Bucket=bucket, Key="trades/symbol=MSFT/date=2023-11-14/c.parquet", Body=parquet(msft))
    crypto = [
        {k: v for k, v in lake_line(i, "BINANCE:BTCUSDT").items() if k != "s"} for i in range(10)
    ]
    key = "trades/symbol=BINANCE%3ABTCUSDT/date=2023-11-14/d.parquet"
    put(Bucket=bucket, Key=key, Body=parquet(crypto))
    put(Bucket=bucket, Key="errors/processing-failed/2023/11/14/x", Body=b"not a trade")
    # WHEN the training history is read from the lake's data prefix
    stats = LakeStats()
    history = lake_history(bucket, stats=stats)
    # THEN every distinct trade is there once, as a training row, in time order
    assert len(history) == 3010
    assert stats.objects == 4
    assert stats.duplicates == 1
    assert stats.skipped == 1
    assert set(history[0]) == {"s", "p", "v", "t", "c", "id"}
    assert [r["t"] for r in history] == sorted(r["t"] for r in history)
    # AND the symbol missing from a Parquet file comes from its (percent-encoded) partition
    assert sum(r["s"] == "BINANCE:BTCUSDT" for r in history) == 10
    # AND a model trains on it, recording where the data came from
    result = train(
        tmp_path / "model", trades=history, horizon_s=1.0, source=f"s3://{bucket}/trades/"
    )
    assert result.metrics["holdout_rows"] > 0
    assert result.metadata["training"]["source"] == f"s3://{bucket}/trades/"
