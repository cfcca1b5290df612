"""Which InvokeEndpoint errors are worth another attempt, and exponential backoff with full jitter.

Throttling (ThrottlingException, HTTP 429, ModelNotReadyException), server errors (5xx,
InternalDependencyException's 530) and connection trouble (refused, reset, timed out) may pass;
ValidationError and ModelError (the model itself raised, HTTP 424) fail the same way again.
Kept in this package rather than shared with hotstore: each function's zip carries only its own
``lambdas/<name>/`` and a few core modules.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ModelNotReadyException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "InternalDependencyException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def http_status(exc: Exception) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_transient(exc: Exception) -> bool:
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in TRANSIENT_CODES or status == 429 or status >= 500
    # EndpointConnectionError, ConnectTimeoutError (ConnectionError); ReadTimeoutError and
    # ConnectionClosedError (HTTPClientError).
    return isinstance(exc, BotoConnectionError | HTTPClientError)


class Backoff:
    """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): concurrent
    invocations retrying a throttled endpoint spread out instead of arriving in waves."""

    def __init__(self, base: float, cap: float, rand: Callable[[], float] | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._rand = rand or random.random

    def ceiling(self, retry: int) -> float:
        """Window of retry number ``retry`` (1 = first): base, 2 base, 4 base ... cap."""
        return min(self.cap, self.base * 2.0 ** min(max(retry, 1) - 1, 60))

    def delay(self, retry: int) -> float:
        return self._rand() * self.ceiling(retry)
