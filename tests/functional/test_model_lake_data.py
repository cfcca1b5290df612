"""Retraining on what the pipeline captured: the lake's NDJSON (GZIP) and Parquet objects in S3."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml.data import lake_history
from ml.train import train
from tradestream import aws

T0 = 1_700_000_000_000


def lake_line(i: int, symbol: str = "AAPL") -> dict[str, object]:
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


def test_lake_history_reads_gzip_ndjson_and_parquet_deduplicated_in_time_order(
    aws_env: str, unique: str, tmp_path: Path
) -> None:
    # GIVEN a lake with a GZIP NDJSON object, a plain one that repeats a trade, and a Parquet one
    s3 = aws.client("s3")
    bucket = f"lake-{unique}"
    s3.create_bucket(Bucket=bucket)
    first = [lake_line(i) for i in range(0, 1500)]
    ndjson = "".join(json.dumps(r) + "\n" for r in first).encode()
    s3.put_object(Bucket=bucket, Key="trades/symbol=AAPL/a.gz", Body=gzip.compress(ndjson))
    repeat = (json.dumps(first[0]) + "\n").encode()
    s3.put_object(Bucket=bucket, Key="trades/symbol=AAPL/b", Body=repeat)
    later = [lake_line(i, "MSFT") for i in range(0, 1500)]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(later), buffer)
    s3.put_object(Bucket=bucket, Key="trades/symbol=MSFT/c.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket=bucket, Key="errors/processing-failed/x", Body=b"not a trade")
    # WHEN the training history is read from the lake
    history = lake_history(bucket)
    # THEN every distinct trade is there once, as a raw trade, in time order, errors left out
    assert len(history) == 3000
    assert set(history[0]) == {"s", "p", "v", "t", "c"}
    assert [r["t"] for r in history] == sorted(r["t"] for r in history)
    # AND a model trains on it
    result = train(tmp_path / "model", trades=history)
    assert result.metrics["holdout_rows"] > 0
    assert (
        json.loads((tmp_path / "model" / "metadata.json").read_text())["training"]["source"]
        == "provided"
    )
