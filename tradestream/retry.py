"""Retry policy shared by every AWS caller: which errors are worth another attempt, and
exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

Full jitter spreads the retries of concurrent clients (producers, one Lambda invocation per
shard, a reconnecting WebSocket) uniformly over the window, so a throttled shard, table or
endpoint is not hit again by synchronised waves. The Lambda zips carry this module with the
other core modules they import.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

# Throttling and server-side codes of the services we call (Kinesis, DynamoDB, SQS, SageMaker
# runtime) and the generic ones botocore retries itself. Anything else (validation, a missing
# resource, access denied, the model itself raising) fails the same way again.
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
        "LimitExceededException",
        "ModelNotReadyException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "InternalDependencyException",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "KmsThrottled",
        "KMSThrottlingException",
    }
)


def error_code(exc: BaseException) -> str:
    """AWS's error code for a ClientError, the exception's class name otherwise."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_transient(exc: BaseException) -> bool:
    """True for errors another attempt may not meet: throttling, 429, 5xx, connection trouble."""
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in TRANSIENT_CODES or status == 429 or status >= 500
    # EndpointConnectionError, ConnectTimeoutError (ConnectionError); ReadTimeoutError and
    # ConnectionClosedError (HTTPClientError).
    return isinstance(exc, BotoConnectionError | HTTPClientError)


class Backoff:
    """Exponential backoff with full jitter: retry n waits uniformly in [0, min(cap, base·2ⁿ⁻¹)]."""

    def __init__(
        self,
        base: float,
        cap: float,
        rand: Callable[[], float] | random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        if isinstance(rand, random.Random):
            rand = rand.random
        self._rand: Callable[[], float] = rand or random.random

    def ceiling(self, retry: int) -> float:
        """The window of retry number ``retry`` (1 = first): base, 2 base, 4 base ... cap."""
        # The exponent is clamped so a long outage cannot overflow the float.
        return min(self.cap, self.base * 2.0 ** min(max(retry, 1) - 1, 60))

    def delay(self, retry: int) -> float:
        return self._rand() * self.ceiling(retry)

    def worst_case(self, retries: int) -> float:
        """Longest total sleep of ``retries`` retries, for sizing budgets against timeouts."""
        return sum(self.ceiling(n) for n in range(1, retries + 1))
