"""Hotstore benchmark: put_item per record (the naive way) against the batched handler.

Run: ``python -m bench.hotstore [--trades 5000] [--batch 500]``. Same machine, same moto server,
same Kinesis events (the seeded synthetic source, in batches as the event source mapping sends
them), in one run. Reports trades/s and DynamoDB API calls per 1,000 trades, and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from typing import Any

from bench.common import CallCounter, report, stopwatch
from lambdas.hotstore.handler import Hotstore, dynamodb_client, sqs_client
from lambdas.hotstore.items import to_item
from lambdas.hotstore.settings import HotstoreSettings
from producer.sources import SyntheticSource
from tradestream import aws, readback
from tradestream.local.hot_path import deploy
from tradestream.local.moto_server import ensure_credentials, start_moto
from tradestream.trade import Trade, now_ms


async def _trades(n: int) -> list[Trade]:
    source = SyntheticSource(("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT"), seed=7, max_trades=n)
    return [trade async for frame in source for trade in frame]


def _events(trades: list[Trade], batch: int, stream_arn: str) -> list[dict[str, Any]]:
    """Kinesis events in AWS's shape, as the event source mapping would deliver these trades."""
    events = []
    for start in range(0, len(trades), batch):
        records = []
        for offset, trade in enumerate(trades[start : start + batch]):
            sequence = f"{49_000_000_000_000_000_000_000_000 + start + offset}"
            records.append(
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": trade.s,
                        "sequenceNumber": sequence,
                        "data": base64.b64encode(trade.to_record()).decode(),
                        "approximateArrivalTimestamp": trade.rt / 1000,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"shardId-000000000000:{sequence}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/hotstore",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": stream_arn,
                }
            )
        events.append({"Records": records})
    return events


def naive(table: str, events: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """What the projects this one grew from do: decode each record, one put_item per record."""
    counter = CallCounter()
    dynamodb = counter.attach(aws.client("dynamodb"))
    with stopwatch() as timing:
        for event in events:
            for record in event["Records"]:
                trade = Trade.from_record(base64.b64decode(record["kinesis"]["data"]))
                item = to_item(trade, ttl_days=30, ingested_at_ms=now_ms())
                dynamodb.put_item(TableName=table, Item=item)
    return _row("naive put_item per record", n, counter.total, timing["seconds"])


def batched(settings: HotstoreSettings, events: list[dict[str, Any]], n: int) -> dict[str, Any]:
    counter = CallCounter()
    hotstore = Hotstore(settings, dynamodb=counter.attach(dynamodb_client()), sqs=sqs_client())
    with stopwatch() as timing:
        for event in events:
            response = hotstore.process(event)
            assert not response["batchItemFailures"], response
    return _row("hotstore handler (BatchWriteItem)", n, counter.total, timing["seconds"])


def _row(name: str, n: int, calls: int, seconds: float) -> dict[str, Any]:
    return {
        "method": name,
        "trades": n,
        "seconds": seconds,
        "trades/s": n / seconds,
        "API calls per 1,000 trades": calls * 1000 / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500, help="records per Kinesis event")
    args = parser.parse_args()
    moto = start_moto()
    os.environ.update(AWS_ENDPOINT_URL=moto.url, AWS_REGION="us-east-1")
    ensure_credentials()
    try:
        trades = asyncio.run(_trades(args.trades))
        naive_stack = deploy(stream_name="bench-naive", table_name="bench_naive")
        ours_stack = deploy(stream_name="bench-batched", table_name="bench_batched")
        events = _events(trades, args.batch, ours_stack.stream_arn)
        distinct = len({t.id for t in trades})
        settings = HotstoreSettings(table_name=ours_stack.table_name, dlq_url=ours_stack.dlq_url)
        batched(settings, events[:1], len(events[0]["Records"]))  # warm-up
        slow = naive(naive_stack.table_name, events, len(trades))
        fast = batched(settings, events, len(trades))
        items = readback.count_items(ours_stack.table_name)
        report(
            f"Hotstore: naive vs batched ({args.batch}-record events, moto server on loopback)",
            [slow, fast],
            {
                "trades/s ratio (batched / naive)": fast["trades/s"] / slow["trades/s"],
                "API calls ratio (naive / batched)": slow["API calls per 1,000 trades"]
                / fast["API calls per 1,000 trades"],
                "distinct trades / items in the batched table": f"{distinct} / {items}",
            },
        )
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
