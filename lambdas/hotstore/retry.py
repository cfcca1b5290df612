"""Retry policy shared by the writer and the DLQ sender: which errors are worth another attempt,
and exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

Full jitter spreads the retries of concurrent invocations (one per shard) uniformly over the
window, so a throttled table is not hit again by synchronised waves. Kept here rather than shared
with the producer: the function's zip carries only ``lambdas/`` and a few core modules.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

# Throttling and server-side codes (DynamoDB, SQS, and the generic ones botocore retries itself).
# Anything else (validation, missing table or queue, access denied) fails the same way again.
TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "KmsThrottled",
    }
)


def error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def is_transient(exc: Exception) -> bool:
    """True for errors another attempt may not meet: throttling, 5xx, connection trouble."""
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return error_code(exc) in TRANSIENT_CODES or status >= 500
    return isinstance(exc, BotoConnectionError | HTTPClientError)


class Backoff:
    def __init__(self, base: float, cap: float, rand: Callable[[], float] | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._rand = rand or random.random

    def ceiling(self, retry: int) -> float:
        """Window of retry number ``retry`` (1 = first): base, 2 base, 4 base ... cap."""
        # The exponent is clamped so a huge retry number cannot overflow the float.
        return min(self.cap, self.base * 2.0 ** min(max(retry, 1) - 1, 60))

    def delay(self, retry: int) -> float:
        return self._rand() * self.ceiling(retry)

    def worst_case(self, retries: int) -> float:
        """Longest total sleep of ``retries`` retries, for sizing budgets against timeouts."""
        return sum(self.ceiling(n) for n in range(1, retries + 1))
