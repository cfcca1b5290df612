"""The one retry rule: which errors are retried, exponential backoff with full jitter (the window
doubles to a cap, delays spread over it) and the budget of attempts."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from tradestream.retry import Backoff, RetryBudget, error_code, is_retryable_code, is_transient


def test_window_doubles_from_base_up_to_the_cap() -> None:
    # GIVEN a backoff from 0.5 s to 5 s WHEN the windows of retries 1..6 are asked
    # THEN they double from the base and stop at the cap
    backoff = Backoff(0.5, 5)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert backoff.ceiling(10_000) == 5  # no overflow after a long outage


def test_delays_are_spread_over_the_whole_window() -> None:
    # GIVEN a seeded backoff WHEN 2,000 delays are drawn for the 3rd retry (window 0..4 s)
    backoff = Backoff(1, 60, random.Random(3))
    delays = [backoff.delay(3) for _ in range(2000)]
    # THEN all fall in the window and cover it (full jitter, not "base + a little")
    assert 0 <= min(delays) < 0.1
    assert 3.9 < max(delays) <= 4
    assert 1.8 < sum(delays) / len(delays) < 2.2


def test_nonsense_bounds_are_refused() -> None:
    # GIVEN a zero base or a cap below the base WHEN built THEN refused
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)


def test_the_budget_allows_max_attempts_tries_and_waits_within_the_window() -> None:
    # GIVEN a budget of 3 tries, 1 s doubling to 4 s, with a seeded jitter
    budget = RetryBudget(3, Backoff(1, 4, random.Random(5)))
    # WHEN work has been tried 1, 2 or 3 times THEN the third try is the last
    assert [budget.allows(n) for n in (1, 2, 3)] == [True, True, False]
    # AND the wait after the 2nd try lies in the 2nd retry's window, 0..2 s
    assert all(0 <= budget.delay(2) <= 2 for _ in range(200))
    # AND the worst case of the whole budget is the two windows it can wait: 1 + 2 s
    assert budget.worst_case() == 3
    with pytest.raises(ValueError):
        RetryBudget(0, Backoff(1, 2))


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecords",
    )


@pytest.mark.parametrize(
    "code",
    [
        # What PutRecords answers per entry (HTTP 200, ErrorCode) and documents as transient.
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "KMSThrottlingException",
        # Throttling and server states of the other services called.
        "ThrottlingException",
        "LimitExceededException",
        "ModelNotReadyException",
        "ServiceUnavailable",
        # Temporary credentials that rotated under a call: the next one signs with fresh ones.
        "ExpiredTokenException",
    ],
)
def test_throttling_server_and_expired_token_codes_are_retried(code: str) -> None:
    # GIVEN an error with that code and a 4xx status WHEN judged THEN it is worth another try
    assert is_retryable_code(code)
    assert is_transient(_client_error(code, 400))


@pytest.mark.parametrize(
    "code",
    [
        "ResourceNotFoundException",
        "AccessDeniedException",
        "ValidationException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "UnrecognizedClientException",
        "SomethingAwsAddsNextYear",
    ],
)
def test_other_codes_including_unknown_ones_are_not_retried(code: str) -> None:
    # GIVEN a 4xx error whose code is not in the table (an unknown one too)
    # WHEN judged THEN it fails at once: resending would only delay the error
    assert not is_retryable_code(code)
    assert not is_transient(_client_error(code, 400))


@pytest.mark.parametrize("status", [429, 500, 503])
def test_any_code_with_429_or_5xx_is_retried(status: int) -> None:
    # GIVEN an unknown code WHEN AWS answered 429 or 5xx THEN the status alone says "try again"
    assert is_transient(_client_error("SomethingNew", status))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (NoCredentialsError(), False),
        (ValueError("a bug"), False),
    ],
    ids=["refused", "read-timeout", "reset", "own-deadline", "no-credentials", "bug"],
)
def test_transport_errors_are_retried_but_not_missing_credentials_or_bugs(
    error: BaseException, transient: bool
) -> None:
    # GIVEN an error that is not AWS's answer WHEN judged THEN only the transport's are retried
    assert is_transient(error) is transient
    assert error_code(error) == type(error).__name__
