"""Running a template's Lambda function in this process, as the Lambda Python runtime would.

- ``FunctionSettings``: the function as the template declares it (name, handler, timeout, memory,
  environment), resolved with the deployed stack's values;
- ``load_handler``: the handler found from its ``Handler`` string, with fresh module state;
- ``LambdaContext``: the context object handlers get;
- ``records_within_payload``: Lambda's 6 MB synchronous payload limit, for both emulations.

The context carries the attributes the Python runtime's context has, so handlers (and Powertools'
``inject_lambda_context``) read it exactly as in Lambda. Not emulated: ``identity`` and
``client_context`` are always None (they only exist for mobile SDK invocations), and the timeout is
only reported by ``get_remaining_time_in_millis``; the caller decides what an overrun means.
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tradestream.cfn.template import Resolver, as_int, as_parameter_string, find_resource
from tradestream.limits import LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES


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


class SizedRecord(Protocol):
    @property
    def event_bytes(self) -> int: ...  # what the record adds to the invocation event


def records_within_payload(
    records: Sequence[SizedRecord],
    envelope_bytes: int,
    limit: int = LAMBDA_SYNC_INVOKE_MAX_PAYLOAD_BYTES,
) -> int:
    """How many leading records fit in one invocation payload (always at least one: a record
    too large alone is still tried, and fails as Lambda would fail it)."""
    total = envelope_bytes
    for count, record in enumerate(records):
        total += record.event_bytes
        if total > limit:
            return max(1, count)
    return len(records)


@dataclass(frozen=True)
class FunctionSettings:
    """What the local runtime needs to run a template's function in-process, as Lambda would."""

    function_name: str
    handler: str  # "package.module.function", found the way the Lambda runtime finds it
    runtime: str
    timeout_s: int = 3
    memory_limit_in_mb: int = 128
    environment: dict[str, str] = field(default_factory=dict)


FUNCTION = "AWS::Lambda::Function"


def function_settings(template: Mapping[str, Any], resolver: Resolver) -> FunctionSettings:
    """Resolve the template's function (Lambda's defaults for Timeout and MemorySize).

    Only the properties the local runtime uses are resolved: the role and the code location
    refer to resources that exist only on AWS.
    """
    _, resource = find_resource(template, FUNCTION)
    raw = resource.get("Properties", {})
    props = {
        name: resolver.resolve(raw[name])
        for name in ("FunctionName", "Handler", "Runtime", "Timeout", "MemorySize", "Environment")
        if name in raw
    }
    variables = (props.get("Environment") or {}).get("Variables", {})
    return FunctionSettings(
        function_name=str(props.get("FunctionName", "")),
        handler=str(props["Handler"]),
        runtime=str(props["Runtime"]),
        timeout_s=as_int(props, "Timeout", 3),
        memory_limit_in_mb=as_int(props, "MemorySize", 128),
        environment={str(k): as_parameter_string(v) for k, v in variables.items()},
    )
