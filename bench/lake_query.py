"""Lake query benchmark: `tradestream lake query` (DuckDB over S3, httpfs) against the naive way
(list the prefix, GET every object, gunzip and json.loads every line in Python, as the read-back
code does), on the same lake in moto server over loopback HTTP, in one run.

Run: ``python -m bench.lake_query [--trades 200000] [--per-object 5000]``. The lake is written in
the delivery stream's layout (the template's prefix, the enrich function's partition keys and
lines, Firehose object names, gzip). Reports the seconds per query, and the ratio.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench.common import report, stopwatch
from lambdas.enrich.records import Prediction, lake_line, partition_keys
from tradestream import aws, readback
from tradestream.cfn.template import TEMPLATE_DIR, load_template, resolver_for
from tradestream.lake_sql import query_duckdb
from tradestream.local.firehose.prefix import Context, object_name
from tradestream.local.firehose.settings import delivery_stream_settings
from tradestream.local.moto_server import ensure_credentials, start_moto
from tradestream.synthetic import raw_frames
from tradestream.trade import stamp

BUCKET = "bench-lake"
SYMBOLS = ("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT")
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/trades"

QUERIES = {
    "count(*)": "SELECT count(*) FROM trades",
    "distinct ids per symbol": (
        "SELECT symbol, count(DISTINCT id) AS n FROM trades GROUP BY symbol ORDER BY symbol"
    ),
    "one symbol (partition pruned)": (
        "SELECT count(*), avg(p) FROM trades WHERE symbol = 'BINANCE:BTCUSDT'"
    ),
}


def write_lake(n: int, per_object: int) -> int:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    resolver = resolver_for(
        template,
        parameters={"StreamArn": STREAM_ARN, "BucketName": BUCKET},
        outputs={"BucketName": BUCKET, "BucketArn": f"arn:aws:s3:::{BUCKET}"},
    )
    settings = delivery_stream_settings(template, resolver)
    prefix = settings.prefixes().data
    moment = datetime.now(UTC)
    buffers: dict[str, list[bytes]] = {}
    objects = written = 0

    def flush(key: str) -> None:
        nonlocal objects
        name = object_name(settings.delivery_stream_name, 1, moment, ".gz")
        body = gzip.compress(b"".join(buffers.pop(key)))
        s3.put_object(Bucket=BUCKET, Key=key + name, Body=body)
        objects += 1

    for frame in raw_frames(SYMBOLS, seed=7):
        for trade in stamp(frame, received_ms=max(raw.t for raw in frame)):
            key = prefix.evaluate(Context(moment=moment, partition_keys=partition_keys(trade)))
            buffers.setdefault(key, []).append(lake_line(trade, Prediction(0.0, "bench")))
            written += 1
            if len(buffers[key]) >= per_object:
                flush(key)
        if written >= n:
            break
    for key in list(buffers):
        flush(key)
    return objects


def naive(sql_name: str) -> Any:
    """The same answers the Python way: every object read and parsed."""
    lines = readback.lines(BUCKET, "trades/")
    if sql_name == "count(*)":
        return sum(1 for _ in lines)
    if sql_name == "distinct ids per symbol":
        ids: dict[str, set[str]] = {}
        for line in lines:
            ids.setdefault(line["s"], set()).add(line["id"])
        return sorted((s, len(v)) for s, v in ids.items())
    prices = [line["p"] for line in lines if line["s"] == "BINANCE:BTCUSDT"]
    return len(prices), sum(prices) / len(prices)


def agree(name: str, rows: list[tuple[Any, ...]], answer: Any) -> bool:
    if name == "count(*)":
        return bool(rows[0][0] == answer)
    if name == "distinct ids per symbol":
        return bool(rows == answer)
    count, mean = rows[0]
    return bool(count == answer[0] and math.isclose(mean, answer[1], rel_tol=1e-9))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--per-object", type=int, default=5_000)
    args = parser.parse_args()
    ensure_credentials()
    moto = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = moto.url
    try:
        with stopwatch() as writing:
            objects = write_lake(args.trades, args.per_object)
        rows: list[dict[str, Any]] = []
        for name, sql in QUERIES.items():
            query_duckdb(sql, bucket=BUCKET)  # warm: moto's first reads, the extension's load
            with stopwatch() as ours:
                result = query_duckdb(sql, bucket=BUCKET)
            with stopwatch() as theirs:
                answer = naive(name)
            rows.append(
                {
                    "query": name,
                    "lake query s": ours["seconds"],
                    "python read-back s": theirs["seconds"],
                    "speed-up": theirs["seconds"] / ours["seconds"],
                    "same answer": agree(name, result.rows, answer),
                }
            )
        counts = Counter(k.split("/")[1] for k in _keys())
        report(
            f"lake query over {args.trades:,} trades",
            rows,
            {
                "objects": objects,
                "trades per object": args.per_object,
                "symbol partitions": len(counts),
                "lake written in s": writing["seconds"],
                "cpus": os.cpu_count() or 0,
            },
        )
        print(json.dumps({"objects_per_symbol": dict(counts)}))
    finally:
        moto.stop()


def _keys() -> list[str]:
    s3 = aws.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="trades/")
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


if __name__ == "__main__":
    main()
