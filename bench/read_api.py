"""Read API benchmark: 100-trade pages of one symbol, GET /v1/trades (a DynamoDB Query on the key
design, through the ingest service) against the naive way (a Scan filtered on the symbol, sorted by
the client, which is what a table without a time-ordered sort key leaves), in one run.

Run: ``python -m bench.read_api [--trades 20000] [--pages 200]``. Same moto server on loopback, same
table. Reports p50/p99 per page, pages/s and DynamoDB calls per page, and the ratios. The table is
filled by the hotstore handler itself, so items have exactly the production key design.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import httpx

from bench.common import CallCounter, percentile, report
from bench.hotstore import _events, _trades
from ingest_api import IngestSettings, start_in_thread
from lambdas.hotstore.handler import Hotstore, dynamodb_client, sqs_client
from lambdas.hotstore.settings import HotstoreSettings
from tradestream import aws
from tradestream.local.hot_path import deploy
from tradestream.local.moto_server import ensure_credentials, start_moto

KEY = "bench-read-key-0123456789"
PAGE = 100


def fill(trades: int) -> tuple[str, str]:
    stack = deploy(stream_name="bench-reads", table_name="bench_reads")
    settings = HotstoreSettings(table_name=stack.table_name, dlq_url=stack.dlq_url)
    hotstore = Hotstore(settings, dynamodb=dynamodb_client(), sqs=sqs_client())
    for event in _events(asyncio.run(_trades(trades)), 500, stack.stream_arn):
        assert not hotstore.process(event)["batchItemFailures"]
    return stack.stream_name, stack.table_name


def read_api(url: str, symbol: str, pages: int) -> tuple[list[float], int]:
    """Walk the symbol's trades page by page, following the cursor; latency of each page."""
    latencies: list[float] = []
    seen = 0
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as client:
        cursor: str | None = None
        while len(latencies) < pages:
            params: dict[str, Any] = {"symbol": symbol, "limit": PAGE}
            if cursor:
                params["cursor"] = cursor
            started = time.perf_counter()
            response = client.get("/v1/trades", params=params)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            body = response.json()
            seen += len(body["trades"])
            cursor = body["cursor"]  # None after the last page: start again from the first
    return latencies, seen


def direct_query(table: str, symbol: str, pages: int) -> list[float]:
    """The same Query pages straight from boto3: what the store itself costs, so the service's
    own share is the difference."""
    dynamodb = aws.client("dynamodb")
    latencies: list[float] = []
    start: dict[str, Any] | None = None
    while len(latencies) < pages:
        query: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "s = :s",
            "ExpressionAttributeValues": {":s": {"S": symbol}},
            "Limit": PAGE,
        }
        if start:
            query["ExclusiveStartKey"] = start
        started = time.perf_counter()
        start = dynamodb.query(**query).get("LastEvaluatedKey")
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def naive(table: str, symbol: str, pages: int) -> tuple[list[float], int]:
    """Page n = a full Scan filtered on the symbol, sorted client-side, slice n."""
    counter = CallCounter()
    dynamodb = counter.attach(aws.client("dynamodb"))
    latencies: list[float] = []
    for n in range(pages):
        started = time.perf_counter()
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="s = :s",
            ExpressionAttributeValues={":s": {"S": symbol}},
        ):
            items.extend(page["Items"])
        items.sort(key=lambda item: item["sk"]["S"])
        start = (n * PAGE) % max(1, len(items))
        _ = items[start : start + PAGE]
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, counter.total


def _count(table: str, symbol: str) -> int:
    pages = (
        aws.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=table,
            KeyConditionExpression="s = :s",
            ExpressionAttributeValues={":s": {"S": symbol}},
            Select="COUNT",
        )
    )
    return sum(int(page["Count"]) for page in pages)


def _row(name: str, latencies: list[float], calls_per_page: float) -> dict[str, Any]:
    return {
        "method": name,
        "pages": len(latencies),
        "p50 ms": percentile(latencies, 50),
        "p99 ms": percentile(latencies, 99),
        "pages/s": len(latencies) / (sum(latencies) / 1000),
        "DynamoDB calls per page": calls_per_page,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--symbol", default="AAPL")
    args = parser.parse_args()
    moto = start_moto()
    os.environ.update(AWS_ENDPOINT_URL=moto.url, AWS_REGION="us-east-1")
    ensure_credentials()
    try:
        stream, table = fill(args.trades)
        settings = IngestSettings(
            stream_name=stream,
            table_name=table,
            ingest_api_keys=KEY,
            rate_limit_per_second=1_000_000,
            rate_limit_burst=1_000_000,
        )
        server = start_in_thread(settings)
        try:
            read_api(server.url, args.symbol, 5)  # warm-up: connections, the first Query
            ours, seen = read_api(server.url, args.symbol, args.pages)
        finally:
            server.stop()
        # The naive way reads the whole table per page: fewer pages keep the run short.
        naive_pages = max(5, args.pages // 10)
        slow, scan_calls = naive(table, args.symbol, naive_pages)
        store = direct_query(table, args.symbol, args.pages)
        fast = _row("GET /v1/trades (Query on s, sk; cursor)", ours, 1.0)
        bare = _row("(for scale) the same Query from boto3, no service", store, 1.0)
        baseline = _row("naive: Scan + filter + client sort", slow, scan_calls / naive_pages)
        report(
            f"Read API: {PAGE}-trade pages of {args.symbol} from a {args.trades:,}-trade table "
            "(moto server on loopback)",
            [baseline, fast, bare],
            {
                "p50 ratio (naive / ours)": baseline["p50 ms"] / fast["p50 ms"],
                "p99 ratio (naive / ours)": baseline["p99 ms"] / fast["p99 ms"],
                "trades returned by the read API": seen,
                "trades of the symbol in the table": _count(table, args.symbol),
            },
        )
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
