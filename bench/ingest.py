"""Ingest benchmark: HTTP load on the ingest service from a separate process (wrk), on loopback.

Run: ``python -m bench.ingest [--duration 10] [--targets standin,moto] [--workers 1,2]
[--write docs/bench-ingest.md]`` (needs ``wrk``: ``apt-get install -y wrk``).

Every part runs in its own process, as in production: wrk (one thread), the service (one uvicorn
process, production settings, JSON access logs at INFO into /dev/null) and its Kinesis:

- ``standin``: a Kinesis stand-in that acknowledges every PutRecords entry at once, so the numbers
  are the service's own cost;
- ``moto``: moto server, the embedded stack's AWS (a stream of 4 shards).

For each, one trade per request and 500 per request, both for the service (group commit into
shared PutRecords calls) and for the naive way (one PutRecord call per trade, awaited in the
request). Each case runs closed-loop at its peak, then the service runs again at half that rate
(wrk pacing each connection) to measure latency below saturation. Reported: requests/s, trades/s,
p50/p99 of the 202s (any other answer counts as an error), PutRecords-or-PutRecord calls per
1,000 trades, and the CPU the service process used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
from fastapi import Request

from bench.common import report

KEY = "bench-key-0123456789abcdef"
STREAM = "bench-trades"
T0 = 1_718_000_000_000
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


# -- the Kinesis stand-in (its own process) ----------------------------------------------------

_ENTRY = (
    b'{"SequenceNumber":"49590000000000000000000000000000000000000000000000000000",'
    b'"ShardId":"shardId-000000000000"}'
)
_SUMMARY = json.dumps(
    {
        "StreamDescriptionSummary": {
            "StreamName": STREAM,
            "StreamARN": f"arn:aws:kinesis:us-east-1:123456789012:stream/{STREAM}",
            "StreamStatus": "ACTIVE",
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1718000000,
            "EnhancedMonitoring": [],
            "OpenShardCount": 1,
        }
    }
).encode()


# One shard over the whole hash key range: the shard every answer names (aggregation packs by it).
_SHARDS = json.dumps(
    {
        "Shards": [
            {
                "ShardId": "shardId-000000000000",
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            }
        ]
    }
).encode()


class StandIn:
    """A raw ASGI app answering PutRecords (every entry accepted), PutRecord, DescribeStream-
    Summary and ListShards; GET /stats tells how many calls and records it took."""

    def __init__(self) -> None:
        self.stats = {"PutRecords": 0, "PutRecord": 0, "records": 0}
        self._answers: dict[int, bytes] = {}

    def _put_records(self, body: bytes) -> bytes:
        # Counting a key beats parsing 500 base64 records: the stand-in must stay cheap.
        n = body.count(b'"PartitionKey"')
        self.stats["PutRecords"] += 1
        self.stats["records"] += n
        answer = self._answers.get(n)
        if answer is None:
            answer = b'{"FailedRecordCount":0,"Records":[' + b",".join([_ENTRY] * n) + b"]}"
            self._answers[n] = answer
        return answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = dict(scope["headers"]).get(b"x-amz-target", b"")
        if target.endswith(b".PutRecords"):
            answer = self._put_records(body)
        elif target.endswith(b".PutRecord"):
            self.stats["PutRecord"] += 1
            self.stats["records"] += 1
            answer = b'{"SequenceNumber":"1","ShardId":"shardId-000000000000"}'
        elif target.endswith(b".DescribeStreamSummary"):
            answer = _SUMMARY
        elif target.endswith(b".ListShards"):
            answer = _SHARDS
        elif scope["path"] == "/stats":
            answer = json.dumps(self.stats).encode()
        else:
            answer = b'{"__type":"UnknownOperationException"}'
        headers = [(b"content-type", b"application/x-amz-json-1.1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def run_standin(port: int) -> None:
    import uvicorn

    uvicorn.run(StandIn(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the service under test (its own process) --------------------------------------------------


def run_service(port: int, naive: bool) -> None:
    import uvicorn

    from ingest_api.app import create_app
    from ingest_api.batcher import PutOutcome
    from ingest_api.deps import TradeSink, get_sink
    from ingest_api.listen import uvicorn_config
    from ingest_api.server import serve
    from ingest_api.settings import IngestSettings

    settings = IngestSettings()
    if not naive:
        serve("127.0.0.1", port, settings)  # the production entry point, WORKERS included
        return
    app = create_app(settings)

    class NaiveSink:
        """One PutRecord call per trade, awaited in the request: the way this project replaces."""

        closing = False

        def __init__(self, client: Any) -> None:
            self.client = client

        async def put(self, records: Any) -> PutOutcome:
            for _, key, data in records:
                await self.client.put_record(StreamName=STREAM, Data=data, PartitionKey=key)
            return PutOutcome([record_id for record_id, _, _ in records], [])

    async def naive_sink(request: Request) -> TradeSink:
        return NaiveSink(request.app.state.ingest.kinesis)

    app.dependency_overrides[get_sink] = naive_sink
    uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", port)).run()


# -- orchestration -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=sink)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Setup:
    """One configuration under test: a Kinesis target and a service in front of it."""

    target: str
    kinesis_url: str
    kinesis_pid: int
    way: str
    workers: int
    service_url: str = ""
    service_pid: int = 0

    def case(self) -> dict[str, Any]:
        return {"kinesis": self.target, "way": self.way, "workers": self.workers}


@contextlib.contextmanager
def kinesis_target(name: str, workdir: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **DUMMY_AWS}
    if name == "standin":
        args = [sys.executable, "-m", "bench.ingest", "standin", "--port", str(port)]
    else:
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _process(args, env, workdir / f"{name}.log") as proc:
        _wait_http(f"{url}/stats" if name == "standin" else f"{url}/moto-api/")
        if name == "moto":
            _create_stream(url)
        yield url, proc.pid


def _create_stream(url: str) -> None:
    import boto3

    kinesis = boto3.client(
        "kinesis",
        endpoint_url=url,
        region_name=DUMMY_AWS["AWS_REGION"],
        aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
    )
    kinesis.create_stream(StreamName=STREAM, ShardCount=4)


@contextlib.contextmanager
def service(setup: Setup, workdir: Path) -> Iterator[Setup]:
    port = _free_port()
    env = {
        **os.environ,
        **DUMMY_AWS,
        "AWS_ENDPOINT_URL_KINESIS": setup.kinesis_url,
        "STREAM_NAME": STREAM,
        "INGEST_API_KEYS": KEY,
        "WORKERS": str(setup.workers),
        # The benchmark measures throughput, not the per-key limit.
        "RATE_LIMIT_PER_SECOND": "1000000",
        "RATE_LIMIT_BURST": "1000000",
        # Production defaults otherwise: one JSON access-log line per request, at INFO.
        "LOG_LEVEL": "INFO",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    args = [sys.executable, "-m", "bench.ingest", "service", "--port", str(port)]
    if setup.way == NAIVE:
        args.append("--naive")
    with _process(args, env, workdir / "service.log") as proc:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        yield replace(setup, service_url=f"http://127.0.0.1:{port}", service_pid=proc.pid)


def _trades_body(n: int) -> str:
    trades = [
        {"s": f"SYM{i % 40}", "p": round(100 + i / 100, 2), "v": i % 9, "t": T0 + i, "c": ["1"]}
        for i in range(n)
    ]
    return json.dumps(trades[0] if n == 1 else trades, separators=(",", ":"))


_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{key}"
wrk.body = [==[{body}]==]
local pause = {delay_ms}
if pause > 0 then
  -- Uniform in [0, 2 * pause]: the mean pause paces the connection, the spread keeps the
  -- connections from firing in lockstep (bursts would measure queueing, not the service).
  function delay() return math.random(0, 2 * pause) end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Load:
    trades_per_request: int
    connections: int
    seconds: float
    delay_ms: float = 0


def wrk(url: str, load: Load, workdir: Path) -> dict[str, Any]:
    script = workdir / "load.lua"
    body = _trades_body(load.trades_per_request)
    script.write_text(_LUA.format(key=KEY, body=body, delay_ms=round(load.delay_ms)))
    args = ["wrk", "-t1", f"-c{load.connections}", f"-d{max(1, round(load.seconds))}s"]
    args += ["--timeout", "30s", "-s", str(script), f"{url}/v1/trades"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def _kinesis_calls(setup: Setup) -> int:
    """Kinesis write calls so far: the stand-in's own count, or the service's metrics."""
    if setup.target == "standin":
        with urllib.request.urlopen(f"{setup.kinesis_url}/stats", timeout=5) as answer:
            stats = json.loads(answer.read())
        return int(stats["PutRecords"] + stats["PutRecord"])
    with urllib.request.urlopen(f"{setup.service_url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    prefix = "ingest_kinesis_put_records_calls_total{"
    return int(sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(prefix)))


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its living children (the workers of a multi-worker service)."""
    process = psutil.Process(pid)
    total = float(sum(process.cpu_times()[:2]))
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def measure(setup: Setup, mode: str, load: Load, workdir: Path) -> dict[str, Any]:
    calls_before = _kinesis_calls(setup)
    service_before, kinesis_before = (
        _cpu_seconds(setup.service_pid),
        _cpu_seconds(setup.kinesis_pid),
    )
    busy_before, wrk_before = _busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = wrk(setup.service_url, load, workdir)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (wrk_after.ru_utime - wrk_before.ru_utime) + (
        wrk_after.ru_stime - wrk_before.ru_stime
    )
    service_cpu = _cpu_seconds(setup.service_pid) - service_before
    kinesis_cpu = _cpu_seconds(setup.kinesis_pid) - kinesis_before
    other_cpu = _busy_seconds() - busy_before - service_cpu - kinesis_cpu - wrk_cpu
    calls = _kinesis_calls(setup) - calls_before
    seconds = result["duration_us"] / 1e6
    trades = result["requests"] * load.trades_per_request
    if setup.way == NAIVE:
        calls = trades  # one PutRecord per trade, by construction (not in the service's metrics)
    return {
        **setup.case(),
        "trades/request": load.trades_per_request,
        "mode": mode,
        "connections": load.connections,
        "req/s": result["requests"] / seconds,
        "trades/s": trades / seconds,
        "p50 ms": result["p50_us"] / 1000,
        "p99 ms": result["p99_us"] / 1000,
        "errors": result["errors"],
        "calls/1k trades": calls * 1000 / trades if trades else 0.0,
        "service CPU %": 100 * service_cpu / seconds,
        "Kinesis CPU %": 100 * kinesis_cpu / seconds,
        "wrk CPU %": 100 * wrk_cpu / seconds,
        "other CPU %": 100 * max(0.0, other_cpu) / seconds,
    }


def paced(setup: Setup, load: Load, rate: float, workdir: Path) -> dict[str, Any]:
    """Run at ``rate`` requests/s: wrk waits before each request on each connection; a short
    calibration run measures the time per request that adds to that wait."""
    period_ms = 1000 * load.connections / rate
    trial = Load(load.trades_per_request, load.connections, 3, period_ms)
    achieved = measure(setup, "calibration", trial, workdir)["req/s"] or rate
    overhead_ms = 1000 * load.connections / achieved - period_ms
    delay = max(1.0, period_ms - overhead_ms)
    steady = Load(load.trades_per_request, load.connections, load.seconds, delay)
    return measure(setup, f"paced at {rate:,.0f} req/s", steady, workdir)


# (trades per request, connections) per Kinesis target. moto server takes seconds per 500-record
# PutRecords call, so 16 such requests at once would only measure its queue (and time calls out).
SHAPES = {"standin": ((1, 64), (500, 16)), "moto": ((1, 64), (500, 4))}
NAIVE = "naive: PutRecord per trade"
GROUPED = "service: group commit"


def run(
    targets: list[str],
    seconds: float,
    workers: list[int],
    write: Path | None,
    sizes: list[int],
    naive: bool = True,
) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    rows: list[dict[str, Any]] = []
    ways = [(GROUPED, n) for n in workers] + ([(NAIVE, 1)] if naive else [])
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for target in targets:
            with kinesis_target(target, workdir) as (kinesis_url, kinesis_pid):
                for way, n in ways:
                    base = Setup(target, kinesis_url, kinesis_pid, way, n)
                    with service(base, workdir) as setup:
                        for per_request, connections in SHAPES[target]:
                            if per_request not in sizes:
                                continue
                            wrk(setup.service_url, Load(per_request, connections, 2), workdir)
                            load = Load(per_request, connections, seconds)
                            peak = measure(setup, "peak", load, workdir)
                            rows.append(peak)
                            print(json.dumps(peak), flush=True)
                            if way == GROUPED and peak["req/s"] > 0:
                                half = paced(setup, load, peak["req/s"] / 2, workdir)
                                rows.append(half)
                                print(json.dumps(half), flush=True)
    extra = {
        "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        "load generator": "wrk 4 with one thread, keep-alive connections, loopback",
        "other CPU %": "CPU used meanwhile by processes outside the benchmark (100 = one core)",
    }
    report("Ingest service under HTTP load", rows, extra)
    if write is not None:
        command = (
            f"python -m bench.ingest --duration {seconds:g} --targets {','.join(targets)} "
            f"--workers {','.join(map(str, workers))} --sizes {','.join(map(str, sizes))}"
            + ("" if naive else " --no-naive")
            + f" --write {write}"
        )
        _write_markdown(write, rows, extra, command)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _write_markdown(
    path: Path, rows: list[dict[str, Any]], extra: dict[str, Any], command: str
) -> None:
    """Replace the block between the two results markers of ``path`` (or append one)."""
    headers = list(rows[0])
    table = [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(_fmt(row[h]) for h in headers) + " |" for row in rows),
    ]
    notes = [f"- {key}: {value}" for key, value in extra.items()]
    block = "\n".join([MARKER, f"Command: `{command}`", "", *table, "", *notes, MARKER])
    text = path.read_text() if path.exists() else ""
    if text.count(MARKER) == 2:
        before, _, rest = text.partition(MARKER)
        _, _, after = rest.partition(MARKER)
        text = before + block + after
    else:
        text = text + "\n" + block + "\n"
    path.write_text(text)


MARKER = "<!-- bench.ingest results -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    standin = sub.add_parser("standin", help="(internal) run the Kinesis stand-in")
    standin.add_argument("--port", type=int, required=True)
    svc = sub.add_parser("service", help="(internal) run the service under test")
    svc.add_argument("--port", type=int, required=True)
    svc.add_argument("--naive", action="store_true")
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--targets", default="standin,moto")
    parser.add_argument("--workers", default="1,2", help="WORKERS values of the service to run")
    parser.add_argument("--sizes", default="1,500", help="trades per request to run: 1, 500")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive way")
    parser.add_argument("--write", type=Path, default=None, help="update this Markdown file")
    args = parser.parse_args()
    if args.command == "standin":
        run_standin(args.port)
    elif args.command == "service":
        run_service(args.port, args.naive)
    else:
        workers = [int(n) for n in args.workers.split(",")]
        sizes = [int(n) for n in args.sizes.split(",")]
        run(args.targets.split(","), args.duration, workers, args.write, sizes, not args.no_naive)


if __name__ == "__main__":
    main()
