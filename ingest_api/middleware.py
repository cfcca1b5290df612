"""Request ids, access logs and HTTP metrics, as plain ASGI middleware.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: it adds no task or body copy per request,
which matters at thousands of requests per second.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .log import logger
from .metrics import Metrics

REQUEST_ID_HEADER = "x-request-id"
# An id from an upstream proxy is reused only if it is short and harmless in a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode()
# The standard logger under the Powertools one, for a cheap level check.
_ACCESS_LOG = logging.getLogger(logger.name)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        logger.thread_safe_append_keys(request_id=request_id)
        started = time.perf_counter()
        status = 500
        header = (_REQUEST_ID_BYTES, request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error", extra={"path": scope.get("path")})
            raise
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = _route(scope)
        method = scope["method"]
        self.metrics.requests.labels(route, method, str(status)).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        failed = status >= 500
        level = logging.ERROR if failed else logging.INFO
        if not (failed or self.access_log) or not _ACCESS_LOG.isEnabledFor(level):
            return  # skip the ~50 µs a Powertools record costs
        state: dict[str, Any] = scope.get("state") or {}
        fields = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "caller": state.get("caller"),
        }
        if failed:
            logger.error("request failed", extra=fields)
        else:
            logger.info("request", extra=fields)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_BYTES:
            candidate: str = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """The matched route template, so metric labels stay few whatever paths clients send."""
    route = scope.get("route")
    path: object = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
