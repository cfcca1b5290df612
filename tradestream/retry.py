"""The one retry rule of every AWS caller (producer, ingest service, both Lambdas): which errors
are worth another attempt, the backoff between attempts, and the budget that bounds them.

- Which: a code in ``RETRYABLE_CODES``, HTTP 429 or 5xx, or trouble on the wire (connection
  refused or reset, timeouts). Anything else, including a code this table does not know, fails
  at once: validation, a missing resource, access denied or the model itself raising fail the
  same way again, and retrying them only delays the error the operator has to see.
- Between attempts: exponential backoff with full jitter (AWS Architecture Blog, "Exponential
  Backoff And Jitter"). Full jitter spreads the retries of concurrent clients (producers, one
  Lambda invocation per shard, a reconnecting WebSocket) uniformly over the window, so a
  throttled shard, table or endpoint is not hit again by synchronised waves.
- Budget: at most ``max_attempts`` tries per piece of work (``RetryBudget``); callers with a
  deadline also stop resending once the next try would start after it.

The SDK retries nothing under these callers (``tradestream.aws.NO_SDK_RETRIES``), so every
attempt is counted against the budget here. The Lambda zips carry this module with the other
core modules they import: it needs botocore and the standard library only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

RETRYABLE_CODES = frozenset(
    {
        # Throttling, as botocore's "standard" retry mode and the services we call name it.
        "ProvisionedThroughputExceededException",  # Kinesis, DynamoDB; also per PutRecords entry
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "LimitExceededException",
        "KMSThrottlingException",  # Kinesis on an encrypted stream, as a call or per entry
        "KmsThrottled",
        # Server side: the request may succeed on another host or a moment later.
        "InternalFailure",  # Kinesis; also per PutRecords entry
        "InternalServerError",
        "InternalError",
        "InternalDependencyException",
        "ServiceUnavailable",
        "ModelNotReadyException",  # SageMaker: the endpoint is still loading the model
        "RequestTimeout",
        "RequestTimeoutException",
        # Temporary credentials (ECS task role, Lambda role, SSO) rotate. botocore's refreshable
        # credentials fetch fresh ones before the next signature once the old ones are near
        # expiry, so a call that raced the rotation succeeds when sent again. Static keys that
        # expired do not heal: the budget bounds those, and the code then names the cause.
        "ExpiredTokenException",
    }
)

# Errors of the transport, not of AWS: botocore's EndpointConnectionError and ConnectTimeoutError
# (ConnectionError), ReadTimeoutError and ConnectionClosedError (HTTPClientError); an OSError or
# TimeoutError from a socket or from a caller's own deadline around the call.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    BotoConnectionError,
    HTTPClientError,
    OSError,
    TimeoutError,
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


def is_retryable_code(code: str) -> bool:
    """Whether an error code alone says another attempt may succeed: what a PutRecords entry's
    ``ErrorCode`` (which has no HTTP status of its own) is judged by."""
    return code in RETRYABLE_CODES


def is_transient(exc: BaseException) -> bool:
    """True for errors another attempt may not meet: a retryable code, 429, 5xx, the transport."""
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return is_retryable_code(error_code(exc)) or status == 429 or status >= 500
    return isinstance(exc, TRANSPORT_ERRORS)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Clock:
    """The time a retrying caller waits on and reads, and the randomness of its jitter: one
    object to inject, so a test runs every retry path without sleeping."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    wall_ms: Callable[[], int] = _wall_ms  # epoch ms, for timestamps written to the sinks


SYSTEM_CLOCK = Clock()


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


@dataclass(frozen=True)
class RetryBudget:
    """At most ``max_attempts`` tries of one piece of work, ``backoff`` apart."""

    max_attempts: int
    backoff: Backoff

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("a retry budget needs max_attempts >= 1")

    def allows(self, attempts: int) -> bool:
        """Whether work tried ``attempts`` times may be tried again."""
        return attempts < self.max_attempts

    def delay(self, attempts: int) -> float:
        """The wait before trying again work tried ``attempts`` times (its retry number)."""
        return self.backoff.delay(attempts)

    def worst_case(self) -> float:
        """Longest total sleep the whole budget can take."""
        return self.backoff.worst_case(self.max_attempts - 1)
