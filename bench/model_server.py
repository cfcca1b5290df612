"""Model server benchmark: predictions/s for 1,000-row requests through boto3 sagemaker-runtime.

Run: ``python -m bench.model_server [--requests 200] [--rows 1000] [--clients 1,4]``.

The server (``ml.serve.serve``, the default model unless ``--model-dir``) runs in its own process
on loopback, as it does in compose or behind the local stack; the client is an unmodified boto3
``sagemaker-runtime`` client calling ``invoke_endpoint`` (the runtime API path), one call per
request of ``--rows`` synthetic trades, for each content type, with 1 and more client threads.
Then the in-process cost of one request, split into the package's four functions, to show where
the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from bench.common import percentile, report, stopwatch
from ml.data import synthetic_history
from ml.package import load_inference
from ml.serve import load_model

FORMATS = ("application/json", "application/jsonlines", "text/csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="per case")
    parser.add_argument("--rows", type=int, default=1000, help="trades per request")
    parser.add_argument("--clients", default="1,4", help="client threads, comma-separated")
    parser.add_argument("--model-dir", type=Path, help="default: the default model")
    args = parser.parse_args()

    loaded = load_model(args.model_dir)  # trains the default model first if it is not cached
    trades = synthetic_history(args.rows * 10, seed=3)
    bodies = {
        kind: [_body(trades[i : i + args.rows], kind) for i in range(0, len(trades), args.rows)]
        for kind in FORMATS
    }
    clients = [int(n) for n in args.clients.split(",")]
    with _server_process(loaded.model_dir) as url:
        rows = [
            _run_case(url, kind, bodies[kind], args.requests, args.rows, threads)
            for kind in FORMATS
            for threads in clients
        ]
    report(
        f"Model server: {args.rows:,}-row requests through boto3 sagemaker-runtime",
        rows,
        {"model_version": loaded.model_version, "cpu cores": os.cpu_count() or 0},
    )
    report(
        f"Inside one {args.rows:,}-row request (in process)",
        [_breakdown(loaded.model_dir, bodies)],
        {},
    )


def _body(trades: list[dict[str, Any]], kind: str) -> str:
    records = [{**t, "c": list(t.get("c") or ()), "rt": t["t"] + 40} for t in trades]
    if kind == "application/json":
        return json.dumps(records)
    if kind == "application/jsonlines":
        return "".join(json.dumps(r) + "\n" for r in records)
    return "".join(f"{r['s']},{r['p']},{r['v']},{r['t']},{r['id']}\n" for r in records)


SERVE = "import sys; from pathlib import Path; from ml.serve import serve; " + (
    "serve(Path(sys.argv[1]), '127.0.0.1', int(sys.argv[2]))"
)


@contextmanager
def _server_process(model_dir: Path) -> Iterator[str]:
    """``ml.serve.serve`` in a child process on a free loopback port; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(model_dir), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _pings(url):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the model server did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _pings(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ping", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _run_case(
    url: str, kind: str, bodies: list[str], requests: int, rows: int, threads: int
) -> dict[str, Any]:
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(max_pool_connections=threads, retries={"max_attempts": 1}),
    )

    def call(i: int) -> float:
        started = time.perf_counter()
        answer = client.invoke_endpoint(
            EndpointName="tradestream-model",
            ContentType=kind,
            Accept=kind,
            Body=bodies[i % len(bodies)],
        )
        answer["Body"].read()
        return time.perf_counter() - started

    for i in range(5):  # warm-up: connections, caches
        call(i)
    with stopwatch() as timing, ThreadPoolExecutor(threads) as pool:
        latencies = list(pool.map(call, range(requests)))
    return {
        "content type": kind,
        "clients": threads,
        "requests": requests,
        "predictions/s": requests * rows / timing["seconds"],
        "p50 ms": percentile(latencies, 50) * 1000,
        "p99 ms": percentile(latencies, 99) * 1000,
    }


def _breakdown(model_dir: Path, bodies: dict[str, list[str]]) -> dict[str, Any]:
    inference = load_inference(model_dir)
    model = inference.model_fn(str(model_dir))
    body = bodies["application/json"][0].encode()
    rounds = 50
    spent = {"input_fn": 0.0, "features": 0.0, "model": 0.0, "output_fn": 0.0}
    for _ in range(rounds):
        started = time.perf_counter()
        trades = inference.input_fn(body, "application/json")
        parsed = time.perf_counter()
        rows = inference.features.compute_features(trades)
        featured = time.perf_counter()
        predictions = inference.predict_rows(model, rows)
        predicted = time.perf_counter()
        inference.output_fn(
            {"predictions": predictions.tolist(), "model_version": "v"}, "application/json"
        )
        done = time.perf_counter()
        for name, seconds in zip(
            spent,
            (parsed - started, featured - parsed, predicted - featured, done - predicted),
            strict=True,
        ):
            spent[name] += seconds
    return {f"{name} ms": seconds * 1000 / rounds for name, seconds in spent.items()}


if __name__ == "__main__":
    main()
