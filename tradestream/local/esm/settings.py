"""The event source mapping's settings, read from the hotstore template for the emulation.

The template's ``AWS::Lambda::EventSourceMapping`` is the single source of truth: the local flavour
does not create it, so its properties are resolved here as CloudFormation would resolve them for
the deployed stack (``tradestream.cfn.template.Resolver``), with Lambda's defaults for what the
template leaves out, and checked against the ranges Lambda accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from tradestream.cfn.template import (
    NotEmulatedError,
    Resolver,
    TemplateError,
    as_bool,
    as_int,
    find_resource,
)

EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"

StartingPosition = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
STARTING_POSITIONS: tuple[StartingPosition, ...] = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")

# Mapping properties the emulation honours, and those it can safely ignore (identity, tagging,
# metrics). Anything else in the template is refused, so the local run never silently diverges
# from what AWS would do with the same template.
_EMULATED = {
    "BatchSize",
    "BisectBatchOnFunctionError",
    "DestinationConfig",
    "Enabled",
    "FunctionResponseTypes",
    "MaximumBatchingWindowInSeconds",
    "MaximumRecordAgeInSeconds",
    "MaximumRetryAttempts",
    "ParallelizationFactor",
    "StartingPosition",
    "StartingPositionTimestamp",
}
_IGNORED = {"EventSourceArn", "FunctionName", "Tags", "MetricsConfig", "KmsKeyArn"}


class InvalidMappingSettingsError(TemplateError):
    """Event source mapping settings outside the ranges Lambda accepts."""

    code = "InvalidParameterValueException"


@dataclass(frozen=True)
class MappingSettings:
    """The Kinesis event source mapping settings, with Lambda's defaults for absent properties."""

    batch_size: int = 100
    maximum_batching_window_s: float = 0
    starting_position: StartingPosition = "TRIM_HORIZON"
    starting_position_timestamp: float | None = None
    report_batch_item_failures: bool = False
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1  # -1: retry until the record expires
    maximum_record_age_s: int = -1  # -1: no age limit beyond the stream's retention
    on_failure_destination_arn: str | None = None
    parallelization_factor: int = 1
    enabled: bool = True

    def __post_init__(self) -> None:
        _check_range("BatchSize", self.batch_size, 1, 10_000)
        _check_range("MaximumBatchingWindowInSeconds", self.maximum_batching_window_s, 0, 300)
        _check_range("MaximumRetryAttempts", self.maximum_retry_attempts, -1, 10_000)
        _check_range("ParallelizationFactor", self.parallelization_factor, 1, 10)
        age = self.maximum_record_age_s
        if age != -1:
            _check_range("MaximumRecordAgeInSeconds", age, 60, 604_800)
        if self.starting_position not in STARTING_POSITIONS:
            raise InvalidMappingSettingsError(
                f"StartingPosition {self.starting_position!r} is not one of {STARTING_POSITIONS}"
            )
        needs_timestamp = self.starting_position == "AT_TIMESTAMP"
        if needs_timestamp != (self.starting_position_timestamp is not None):
            raise InvalidMappingSettingsError(
                "StartingPositionTimestamp is required with StartingPosition AT_TIMESTAMP "
                "and refused with any other starting position"
            )


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidMappingSettingsError(f"{name} must be between {low} and {high}, got {value}")


def mapping_settings(template: Mapping[str, Any], resolver: Resolver) -> MappingSettings:
    """Resolve the template's event source mapping into the settings the emulation runs with."""
    _, resource = find_resource(template, EVENT_SOURCE_MAPPING)
    raw = dict(resource.get("Properties", {}))
    refused = set(raw) - _EMULATED - _IGNORED
    if refused:
        raise NotEmulatedError(
            f"the local event source mapping does not emulate {sorted(refused)}; "
            "implement them in tradestream/local/esm/ before adding them to the template"
        )
    props = {name: resolver.resolve(raw[name]) for name in _EMULATED if name in raw}
    props = {name: value for name, value in props.items() if value is not None}

    response_types = props.get("FunctionResponseTypes", [])
    if any(kind != "ReportBatchItemFailures" for kind in response_types):
        raise InvalidMappingSettingsError(f"unknown FunctionResponseTypes {response_types}")
    destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if "OnSuccess" in props.get("DestinationConfig", {}):
        raise NotEmulatedError("OnSuccess destinations are not emulated")
    timestamp = props.get("StartingPositionTimestamp")
    return MappingSettings(
        batch_size=_int(props, "BatchSize", 100),
        maximum_batching_window_s=_int(props, "MaximumBatchingWindowInSeconds", 0),
        starting_position=cast(StartingPosition, str(props.get("StartingPosition", ""))),
        starting_position_timestamp=None if timestamp is None else float(timestamp),
        report_batch_item_failures="ReportBatchItemFailures" in response_types,
        bisect_batch_on_function_error=_bool(props, "BisectBatchOnFunctionError", False),
        maximum_retry_attempts=_int(props, "MaximumRetryAttempts", -1),
        maximum_record_age_s=_int(props, "MaximumRecordAgeInSeconds", -1),
        on_failure_destination_arn=str(destination) if destination else None,
        parallelization_factor=_int(props, "ParallelizationFactor", 1),
        enabled=_bool(props, "Enabled", True),
    )


def _int(props: Mapping[str, Any], name: str, default: int) -> int:
    return as_int(props, name, default, InvalidMappingSettingsError)


def _bool(props: Mapping[str, Any], name: str, default: bool) -> bool:
    return as_bool(props, name, default, InvalidMappingSettingsError)
