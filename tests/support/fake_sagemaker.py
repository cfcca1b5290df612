"""A scriptable SageMaker runtime endpoint, served for real on loopback, for fault injection.

It speaks the runtime API path an unmodified boto3 ``sagemaker-runtime`` client calls
(``POST /endpoints/{name}/invocations``), so tests point the code at it with
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``:

    with FakeSageMaker() as sagemaker:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", sagemaker.url)
        sagemaker.throttle_next(2)          # 2 x HTTP 400 ThrottlingException, then answers
        sagemaker.fail_next(1, status=503, code="ServiceUnavailable")
        sagemaker.down = True               # accept, then close without answering
        sagemaker.delay_s = 5               # answer late (client read timeouts)

A JSON array of trades in, ``{"predictions": [...], "model_version": ...}`` out, one prediction
per trade in input order: ``prediction_for(trade)`` by default, a pure function of the trade so
tests can check every line's prediction belongs to its own trade. Errors use the REST-JSON error
shape botocore parses (``x-amzn-ErrorType`` header and ``{"message"}`` body). Every request is
recorded (endpoint, body size, trades, outcome).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MODEL_VERSION = "fake-model-1"


def prediction_for(trade: dict[str, Any]) -> float:
    """The fake model: the trade's price nudged by its volume, deterministic per trade."""
    return round(float(trade["p"]) * 1.001 + float(trade.get("v", 0)) * 1e-6, 6)


@dataclass(frozen=True)
class Invocation:
    endpoint: str
    body_bytes: int
    trades: int
    outcome: str  # "ok", an error code, "dropped" (down) or "invalid"
    content_type: str | None
    accept: str | None


@dataclass
class _Fault:
    status: int
    code: str


class FakeSageMaker:
    def __init__(
        self,
        *,
        predict: Callable[[dict[str, Any]], Any] = prediction_for,
        model_version: str = MODEL_VERSION,
        host: str = "127.0.0.1",
    ) -> None:
        self.predict = predict
        self.model_version = model_version
        self.down = False
        self.delay_s = 0.0
        self.invocations: list[Invocation] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSageMaker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeSageMaker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 500, code: str = "InternalFailure") -> None:
        """Answer the next ``count`` invocations with this error (queued after earlier faults)."""
        with self._lock:
            self._faults.extend(_Fault(status, code) for _ in range(count))

    def throttle_next(self, count: int, *, status: int = 400) -> None:
        """SageMaker throttles with ThrottlingException (HTTP 400; 429 is also seen)."""
        self.fail_next(count, status=status, code="ThrottlingException")

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.invocations)

    def outcomes(self) -> list[str]:
        with self._lock:
            return [invocation.outcome for invocation in self.invocations]

    # -- server side -------------------------------------------------------------------------

    def _record(self, invocation: Invocation) -> None:
        with self._lock:
            self.invocations.append(invocation)

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the recorded invocations are the log."""

            def _reply(self, status: int, body: dict[str, Any], error: str | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                else:
                    self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
                    self._reply(404, {"message": f"no route {self.path}"}, "UnknownOperation")
                    return
                record = _Recorder(fake, parts[1], body, self.headers)
                if fake.down:
                    record("dropped")
                    self.close_connection = True
                    self.connection.close()  # no status line: the client sees a reset
                    return
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                fault = fake._next_fault()
                if fault is not None:
                    record(fault.code)
                    self._reply(fault.status, {"message": f"{fault.code} (injected)"}, fault.code)
                    return
                try:
                    trades = json.loads(body)
                    if not isinstance(trades, list):
                        raise ValueError("the body must be a JSON array of trades")
                    predictions = [fake.predict(trade) for trade in trades]
                except (ValueError, KeyError, TypeError) as exc:
                    record("invalid")
                    self._reply(400, {"message": str(exc)}, "ValidationError")
                    return
                record("ok", len(trades))
                self._reply(200, {"predictions": predictions, "model_version": fake.model_version})

        return Handler


class _Recorder:
    def __init__(self, fake: FakeSageMaker, endpoint: str, body: bytes, headers: Any) -> None:
        self._fake = fake
        self._endpoint = endpoint
        self._body = body
        self._headers = headers

    def __call__(self, outcome: str, trades: int = 0) -> None:
        self._fake._record(
            Invocation(
                endpoint=self._endpoint,
                body_bytes=len(self._body),
                trades=trades,
                outcome=outcome,
                content_type=self._headers.get("Content-Type"),
                accept=self._headers.get("Accept"),
            )
        )
