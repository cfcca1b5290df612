"""Enrich benchmark: one InvokeEndpoint per record (the naive way) against the batched handler.

Run: ``python -m bench.enrich [--batches 5] [--batch 1000]``. Same machine, same local model
server (SageMaker runtime API on loopback), same 1,000-record Firehose batches of synthetic trades,
in one run. Reports records/s, endpoint calls per batch, and the ratio (target: 20x). Then the
model server's own throughput: predictions/s for 1,000-row requests through boto3.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import uuid
from typing import Any

from bench.common import CallCounter, report, stopwatch
from lambdas.enrich.handler import Enricher, sagemaker_client
from lambdas.enrich.settings import EnrichSettings
from producer.sources import SyntheticSource
from tradestream import aws
from tradestream.local.moto_server import ensure_credentials
from tradestream.trade import Trade

ENDPOINT = "tradestream-model"


async def _trades(n: int) -> list[Trade]:
    source = SyntheticSource(("AAPL", "MSFT", "AMZN", "BINANCE:BTCUSDT"), seed=3, max_trades=n)
    unique: dict[str, Trade] = {}
    async for frame in source:
        for trade in frame:
            unique.setdefault(trade.id, trade)
    return list(unique.values())[:n]


def _firehose_event(trades: list[Trade]) -> dict[str, Any]:
    """A Firehose transformation request in AWS's shape."""
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/bench",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
        "region": "us-east-1",
        "records": [
            {
                "recordId": f"{i:056d}",
                "approximateArrivalTimestamp": trade.rt,
                "data": base64.b64encode(trade.to_record()).decode(),
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": trade.s,
                    "approximateArrivalTimestamp": trade.rt,
                    "sequenceNumber": f"{i:056d}",
                    "subsequenceNumber": 0,
                },
            }
            for i, trade in enumerate(trades)
        ],
    }


def naive(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Decode each record and call the endpoint with just that trade, as per-record code does."""
    counter = CallCounter()
    runtime = counter.attach(aws.client("sagemaker-runtime"))
    records = 0
    with stopwatch() as timing:
        for event in events:
            for record in event["records"]:
                trade = json.loads(base64.b64decode(record["data"]))
                answer = runtime.invoke_endpoint(
                    EndpointName=ENDPOINT,
                    ContentType="application/json",
                    Accept="application/json",
                    Body=json.dumps([trade]),
                )
                json.loads(answer["Body"].read())
                records += 1
    return _row("naive InvokeEndpoint per record", records, len(events), counter.total, timing)


def batched(events: list[dict[str, Any]]) -> dict[str, Any]:
    counter = CallCounter()
    settings = EnrichSettings(endpoint_name=ENDPOINT)
    enricher = Enricher(settings, sagemaker=counter.attach(sagemaker_client(settings)))
    records = 0
    with stopwatch() as timing:
        for event in events:
            response = enricher.process(event)
            ok = [r for r in response["records"] if r["result"] == "Ok"]
            assert len(ok) == len(event["records"]), "every record must be enriched"
            for r in ok:
                line = json.loads(base64.b64decode(r["data"]))
                assert line["prediction"] is not None, line
            records += len(ok)
    return _row("enrich handler (one call per chunk)", records, len(events), counter.total, timing)


def _row(
    name: str, records: int, batches: int, calls: int, timing: dict[str, float]
) -> dict[str, Any]:
    return {
        "method": name,
        "records": records,
        "seconds": timing["seconds"],
        "records/s": records / timing["seconds"],
        "endpoint calls per batch": calls / batches,
    }


def server_throughput(trades: list[Trade], requests: int) -> dict[str, Any]:
    runtime = aws.client("sagemaker-runtime")
    body = json.dumps([json.loads(t.to_record()) for t in trades[:1000]])
    with stopwatch() as timing:
        for _ in range(requests):
            answer = runtime.invoke_endpoint(
                EndpointName=ENDPOINT, ContentType="application/json", Body=body
            )
            assert len(json.loads(answer["Body"].read())["predictions"]) == 1000
    return {
        "requests of 1,000 rows": requests,
        "seconds": timing["seconds"],
        "predictions/s": requests * 1000 / timing["seconds"],
        "ms per request": timing["seconds"] * 1000 / requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    from ml.serve import start_in_thread

    os.environ.setdefault("AWS_REGION", "us-east-1")
    ensure_credentials()
    server = start_in_thread()
    os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = server.url
    try:
        trades = asyncio.run(_trades(args.batches * args.batch))
        events = [
            _firehose_event(trades[i : i + args.batch]) for i in range(0, len(trades), args.batch)
        ]
        batched(events[:1])  # warm-up: the model, connection pools
        slow = naive(events)
        fast = batched(events)
        report(
            f"Enrich: naive vs batched ({args.batch}-record Firehose batches, local model server)",
            [slow, fast],
            {"records/s ratio (batched / naive)": fast["records/s"] / slow["records/s"]},
        )
        throughput = server_throughput(trades, requests=20)
        report("Model server throughput (boto3 sagemaker-runtime, JSON)", [throughput], {})
    finally:
        server.stop()


if __name__ == "__main__":
    main()
