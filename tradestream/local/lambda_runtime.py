"""A Lambda context object for handlers invoked in-process by the local emulations.

It carries the attributes the Python runtime's context has, so handlers (and Powertools'
``inject_lambda_context``) read it exactly as in Lambda. Not emulated: ``identity`` and
``client_context`` are always None (they only exist for mobile SDK invocations), and the timeout is
only reported by ``get_remaining_time_in_millis``; the caller decides what an overrun means.
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


def function_arn(region: str, account_id: str, function_name: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    timeout_s: float = 60.0
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    # Lambda names streams "<date>/[<version>]<instance id>"; one stream per emulated instance.
    log_stream_name: str = field(
        default_factory=lambda: f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    )
    _deadline: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    @property
    def overran(self) -> bool:
        """True once the function has run past its timeout (Lambda would have stopped it)."""
        return time.monotonic() > self._deadline


Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(handler: str) -> Handler:
    """Import ``package.module.function`` as the Lambda runtime does, with fresh module state."""
    module_name, _, function_name = handler.rpartition(".")
    module = importlib.import_module(module_name)
    reset = getattr(module, "reset", None)
    if callable(reset):
        reset()  # a new "cold start": settings and clients are read again from the environment
    fn: Handler = getattr(module, function_name)
    return fn


# Lambda's synchronous invocation payload limit, request and response (AWS, "Lambda quotas").
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


class SizedRecord(Protocol):
    @property
    def event_bytes(self) -> int: ...  # what the record adds to the invocation event


def records_within_payload(
    records: Sequence[SizedRecord], envelope_bytes: int, limit: int = MAX_PAYLOAD_BYTES
) -> int:
    """How many leading records fit in one invocation payload (always at least one: a record
    too large alone is still tried, and fails as Lambda would fail it)."""
    total = envelope_bytes
    for count, record in enumerate(records):
        total += record.event_bytes
        if total > limit:
            return max(1, count)
    return len(records)
