"""A fault-injecting HTTP proxy in front of an AWS endpoint (moto server, LocalStack).

Clients are pointed at ``FaultProxy.url`` instead of the endpoint, so they see faults exactly as
they would from AWS: over real HTTP, in AWS's response shapes. It injects:

- partial PutRecords failures: a share of the entries are answered with
  ``ProvisionedThroughputExceededException`` (HTTP 200, per-record ``ErrorCode``) and are not
  forwarded; the rest reach the endpoint;
- BatchWriteItem ``UnprocessedItems``: a share of the items are held back and returned as
  unprocessed, the rest are written;
- whole-call errors for the next N calls of an operation (throttling 400s or 5xx);
- an endpoint that is down (every call answered 503).

It also counts calls per operation, which the benchmarks use to report API calls per 1,000 trades.

Not emulated: latency, connection resets mid-body, protocols other than the JSON ones (Kinesis,
DynamoDB, SQS JSON) for the partial-failure rules; other calls are forwarded untouched.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Response headers that no longer hold once the proxy rewrites a body, or are per-hop.
_DROPPED_HEADERS = {
    "content-length",
    "transfer-encoding",
    "connection",
    "x-amz-crc32",
    "server",
    "date",
}

THROTTLING_CODES = {
    "Kinesis": "ProvisionedThroughputExceededException",
    "DynamoDB": "ProvisionedThroughputExceededException",
}


@dataclass
class _Failure:
    remaining: int
    status: int
    code: str


class FaultProxy:
    """Loopback proxy; configure the public attributes at any time, they are read per request."""

    def __init__(self, upstream: str, *, seed: int = 0, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.kinesis_put_failure_rate = 0.0
        self.dynamodb_unprocessed_rate = 0.0
        self.down = False
        self.counts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fail_next(
        self, operation: str, count: int, *, status: int = 500, code: str = "InternalFailure"
    ) -> None:
        """Answer the next ``count`` calls of ``operation`` (e.g. "PutRecords") with an error."""
        with self._lock:
            self._failures[operation] = _Failure(count, status, code)

    def throttle_next(self, operation: str, count: int) -> None:
        self.fail_next(operation, count, status=400, code="ThrottlingException")

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.injected.clear()

    # -- request handling -------------------------------------------------------------------

    def _take_failure(self, operation: str) -> _Failure | None:
        with self._lock:
            failure = self._failures.get(operation)
            if failure is None or failure.remaining <= 0:
                return None
            failure.remaining -= 1
            self.injected[f"{operation}:{failure.code}"] += 1
            return failure

    def _sample(self, n: int, rate: float) -> set[int]:
        with self._lock:
            return {i for i in range(n) if self._random.random() < rate}

    def _count(self, operation: str) -> None:
        with self._lock:
            self.counts[operation] += 1

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _put_records(self, request: dict[str, Any], forward: Any) -> tuple[int, bytes]:
        records = request.get("Records", [])
        failed = self._sample(len(records), self.kinesis_put_failure_rate)
        kept = [r for i, r in enumerate(records) if i not in failed]
        results: list[dict[str, Any]] = []
        failed_count = 0
        if kept:
            status, body = forward(json.dumps({**request, "Records": kept}).encode())
            if status != 200:
                return status, body
            upstream = json.loads(body)
            results = list(upstream.get("Records", []))
            failed_count = int(upstream.get("FailedRecordCount", 0))
        merged: list[dict[str, Any]] = []
        upstream_iter = iter(results)
        for i in range(len(records)):
            if i in failed:
                merged.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard (injected by FaultProxy).",
                    }
                )
            else:
                merged.append(next(upstream_iter))
        with self._lock:
            self.injected["PutRecords:entries"] += len(failed)
        response = {"FailedRecordCount": failed_count + len(failed), "Records": merged}
        return 200, json.dumps(response).encode()

    def _batch_write_item(self, request: dict[str, Any], forward: Any) -> tuple[int, bytes]:
        flat = [
            (table, item)
            for table, items in request.get("RequestItems", {}).items()
            for item in items
        ]
        held = self._sample(len(flat), self.dynamodb_unprocessed_rate)
        unprocessed: dict[str, list[Any]] = {}
        kept: dict[str, list[Any]] = {}
        for i, (table, item) in enumerate(flat):
            (unprocessed if i in held else kept).setdefault(table, []).append(item)
        response: dict[str, Any] = {"UnprocessedItems": {}}
        if kept:
            status, body = forward(json.dumps({**request, "RequestItems": kept}).encode())
            if status != 200:
                return status, body
            response = json.loads(body)
        merged = response.setdefault("UnprocessedItems", {})
        for table, items in unprocessed.items():
            merged.setdefault(table, []).extend(items)
        with self._lock:
            self.injected["BatchWriteItem:unprocessed"] += len(held)
        return 200, json.dumps(response).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silence per-request logging; the counts are the record."""

            def _operation(self, body: bytes) -> tuple[str, str]:
                target = self.headers.get("X-Amz-Target", "")
                if target:
                    prefix, _, operation = target.rpartition(".")
                    service = "Kinesis" if prefix.startswith("Kinesis") else prefix.split("_")[0]
                    return service, operation
                action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
                return "query", action or f"{self.command} {urlsplit(self.path).path}"

            def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in _DROPPED_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str) -> None:
                body = json.dumps({"__type": code, "message": f"{code} (injected by FaultProxy)"})
                self._reply(status, body.encode(), [("Content-Type", "application/x-amz-json-1.1")])

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service, operation = self._operation(body)
                proxy._count(operation)
                if proxy.down:
                    self._error(503, "ServiceUnavailable")
                    return
                failure = proxy._take_failure(operation)
                if failure is not None:
                    code = failure.code
                    if code == "ThrottlingException":
                        code = THROTTLING_CODES.get(service, code)
                    self._error(failure.status, code)
                    return
                headers = {k: v for k, v in self.headers.items()}
                upstream_headers: list[tuple[str, str]] = []

                def forward(new_body: bytes) -> tuple[int, bytes]:
                    nonlocal upstream_headers
                    status, upstream_headers, data = proxy._forward(
                        self.command, self.path, headers, new_body
                    )
                    return status, data

                if operation == "PutRecords" and proxy.kinesis_put_failure_rate > 0:
                    status, data = proxy._put_records(json.loads(body), forward)
                elif operation == "BatchWriteItem" and proxy.dynamodb_unprocessed_rate > 0:
                    status, data = proxy._batch_write_item(json.loads(body), forward)
                else:
                    status, data = forward(body)
                if not upstream_headers:
                    upstream_headers = [("Content-Type", "application/x-amz-json-1.1")]
                self._reply(status, data, upstream_headers)

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle
            do_DELETE = _handle
            do_HEAD = _handle

        return Handler
