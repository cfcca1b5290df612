"""Running the service: graceful stop with requests in flight, and the container entrypoint
(`python -m ingest_api`) with several worker processes, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from ingest_api import IngestSettings, start_in_thread
from tests.support.deaggregated import by_kpl
from tradestream import aws
from tradestream.trade import Trade

KEY = "server-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
T0 = 1_718_000_000_000


def _trade(n: int) -> dict[str, Any]:
    return {"s": "AAPL", "p": 100 + n, "v": 1, "t": T0 + n}


def _stream(unique: str) -> str:
    name = f"server-{unique}"
    aws.client("kinesis").create_stream(StreamName=name, ShardCount=1)
    return name


def _stored_ids(stream: str) -> list[str]:
    kinesis = aws.client("kinesis")
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
    return [Trade.from_record(data).id for _, data in by_kpl(records)]


def _accepted_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ingest_trades_accepted_total":
                return float(sample.value)
    raise AssertionError("ingest_trades_accepted_total missing")


def test_stop_lets_a_request_in_flight_finish_durably(aws_env: str, unique: str) -> None:
    # GIVEN a service whose batcher holds trades for a 1 s linger
    stream = _stream(unique)
    settings = IngestSettings(stream_name=stream, ingest_api_keys=KEY, linger_ms=1000)
    server = start_in_thread(settings)
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{server.url}/v1/trades", json=_trade(1), headers=HEADERS, timeout=30)
        )
    )
    request.start()
    time.sleep(0.3)
    # WHEN the server is stopped while that request waits in the batcher
    started = time.monotonic()
    server.stop()
    request.join(10)
    # THEN the request got its 202 once the trade was in the stream, and the stop waited for it
    assert [a.status_code for a in answers] == [202]
    assert _stored_ids(stream) == answers[0].json()["ids"]
    assert 0.4 < time.monotonic() - started < 10
    assert not server.running


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited during startup"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the service did not become ready")


async def _post_all(url: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/trades", json=_trade(i)) for i in range(n))
        )
    return [a.status_code for a in answers]


def _entrypoint(stream: str, port: int) -> subprocess.Popen[bytes]:
    """`python -m ingest_api` configured only through the environment, with 2 workers."""
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
        "STREAM_NAME": stream,
        "INGEST_API_KEYS": KEY,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "ingest_api"], env=env, stderr=subprocess.DEVNULL
    )


def _workers(pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(pid).children(recursive=True)
        if "spawn_main" in " ".join(child.cmdline())
    ]


def test_the_entrypoint_serves_with_two_workers_and_stops_on_sigterm(
    aws_env: str, unique: str
) -> None:
    # GIVEN the container entrypoint with 2 workers
    stream = _stream(unique)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _entrypoint(stream, port)
    try:
        _wait_ready(url, proc)
        workers = _workers(proc.pid)
        # WHEN 40 requests of one trade arrive at once, and the metrics are scraped 4 times
        codes = asyncio.run(_post_all(url, 40))
        totals = [_accepted_total(url) for _ in range(4)]
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # THEN two workers served, every scrape counts all 40 trades, and SIGTERM ended it cleanly
    assert len(workers) == 2
    assert codes == [202] * 40
    assert totals == [40.0] * 4
    assert exit_code == 0
    assert len(set(_stored_ids(stream))) == 40


def test_when_a_worker_dies_the_entrypoint_stops_and_fails(aws_env: str, unique: str) -> None:
    # GIVEN the entrypoint serving with 2 workers
    stream = _stream(unique)
    port = _free_port()
    proc = _entrypoint(stream, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        first, second = _workers(proc.pid)
        # WHEN one worker is killed
        first.kill()
        exit_code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # THEN the supervisor stopped the other one and exited with an error for the orchestrator
    assert exit_code != 0
    assert not second.is_running() or second.status() == psutil.STATUS_ZOMBIE
