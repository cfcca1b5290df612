"""Producer memory under an outage: Kinesis unavailable while the source keeps sending.

Run: ``python -m bench.producer_memory [--outage 60]``. Starts moto server and a fault proxy in
front of it, runs ``python -m producer`` (unthrottled synthetic source) as a subprocess against
the proxy, takes Kinesis down for ``--outage`` seconds, brings it back, and samples the producer's
resident memory every second. Backpressure means the bounded buffer fills, the source blocks, and
memory stays flat instead of growing with the backlog.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import psutil

from bench.common import report
from tests.support.faults import FaultProxy
from tradestream import aws
from tradestream.local.moto_server import ensure_credentials, start_moto

LIMIT_MB = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outage", type=float, default=60)
    parser.add_argument("--recovery", type=float, default=10)
    args = parser.parse_args()
    moto = start_moto()
    os.environ.update(AWS_ENDPOINT_URL=moto.url, AWS_REGION="us-east-1")
    ensure_credentials()
    aws.client("kinesis").create_stream(StreamName="memory", ShardCount=2)
    with FaultProxy(moto.url) as proxy:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": proxy.url,
            "STREAM_NAME": "memory",
            "SOURCE": "synthetic",
            "SYNTHETIC_RATE": "0",
            "LOG_LEVEL": "INFO",
        }
        proxy.down = True
        # Logs go to a file: a pipe nobody reads would fill up and stall the producer.
        with tempfile.TemporaryFile() as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "producer"], env=env, stdout=subprocess.DEVNULL, stderr=log
            )
            samples = _sample_rss(child, proxy, args.outage, args.recovery)
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=60)
            log.seek(0)
            stderr = log.read().decode()
    moto.stop()
    stats = _final_stats(stderr)
    peak = max(samples)
    report(
        f"Producer resident memory, Kinesis down for {args.outage:.0f} s, then back",
        [
            {
                "phase": "outage, then recovery",
                "RSS p50 MB": sorted(samples)[len(samples) // 2],
                "RSS max MB": peak,
            }
        ],
        {
            "limit MB": LIMIT_MB,
            "within limit": peak < LIMIT_MB,
            "producer final stats": json.dumps(stats),
            "PutRecords calls refused during the outage": proxy.counts["PutRecords"],
        },
    )
    if peak >= LIMIT_MB:
        sys.exit(1)


def _sample_rss(
    child: subprocess.Popen[bytes], proxy: FaultProxy, outage: float, recovery: float
) -> list[float]:
    """Resident memory once a second; Kinesis comes back after ``outage`` seconds."""
    process = psutil.Process(child.pid)
    samples: list[float] = []
    started = time.monotonic()
    while time.monotonic() - started < outage + recovery:
        if proxy.down and time.monotonic() - started >= outage:
            proxy.down = False
        samples.append(process.memory_info().rss / 2**20)
        time.sleep(1)
    return samples


def _final_stats(stderr: str) -> dict[str, object]:
    for line in reversed(stderr.splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "producer stopped":
            return dict(entry.get("stats", {}))
    return {}


if __name__ == "__main__":
    main()
