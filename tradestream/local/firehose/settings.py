"""Read the delivery stream's settings from the lake template, for the Firehose emulation.

The template's ``AWS::KinesisFirehose::DeliveryStream`` is the single source of truth: the local
flavour does not create it, so its properties are resolved here the way CloudFormation would
resolve them for the deployed stack (``tradestream.cfn.template.Resolver``), with Firehose's
defaults for what the template leaves out, and validated with Firehose's own rules.

Honoured: ``DeliveryStreamName``, ``DeliveryStreamType`` (KinesisStreamAsSource only), the source
stream ARN, and of ``ExtendedS3DestinationConfiguration``: ``BucketARN``, ``Prefix``,
``ErrorOutputPrefix``, ``BufferingHints``, ``CompressionFormat`` (UNCOMPRESSED, GZIP),
``FileExtension``, ``CustomTimeZone``, ``DynamicPartitioningConfiguration.Enabled`` and a
``ProcessingConfiguration`` with one Lambda processor (``NumberOfRetries``, ``BufferSizeInMBs``,
``BufferIntervalInSeconds``; ``LambdaArn`` when it resolves). Ignored (identity, encryption, logs,
tags): role ARNs, ``EncryptionConfiguration``, ``CloudWatchLoggingOptions``,
``DeliveryStreamEncryptionConfigurationInput``, ``Tags``, dynamic partitioning's RetryOptions.
Anything else is refused (``NotEmulatedError``), so the local run never silently diverges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tradestream.cfn.template import NotEmulatedError, Resolver, TemplateError, find_resource
from tradestream.limits import (
    FIREHOSE_PROCESSOR_BUFFER_MAX_BYTES,
    FIREHOSE_PROCESSOR_BUFFER_MIN_BYTES,
    MiB,
)
from tradestream.local.firehose.prefix import Prefixes

DELIVERY_STREAM = "AWS::KinesisFirehose::DeliveryStream"
LAKE_TEMPLATE = "lake.yaml"
MIB = MiB  # Firehose's settings are in MiB ("SizeInMBs")
DYNAMIC_PARTITIONING_MIN_BUFFER = 64 * MIB

CompressionFormat = Literal["UNCOMPRESSED", "GZIP"]
_COMPRESSIONS: tuple[CompressionFormat, ...] = ("UNCOMPRESSED", "GZIP")

_STREAM_EMULATED = {
    "DeliveryStreamName",
    "DeliveryStreamType",
    "KinesisStreamSourceConfiguration",
    "ExtendedS3DestinationConfiguration",
}
_STREAM_IGNORED = {"Tags", "DeliveryStreamEncryptionConfigurationInput"}
_S3_EMULATED = {
    "BucketARN",
    "Prefix",
    "ErrorOutputPrefix",
    "BufferingHints",
    "CompressionFormat",
    "FileExtension",
    "CustomTimeZone",
    "DynamicPartitioningConfiguration",
    "ProcessingConfiguration",
}
_S3_IGNORED = {"RoleARN", "EncryptionConfiguration", "CloudWatchLoggingOptions", "S3BackupMode"}
_PROCESSOR_EMULATED = {"LambdaArn", "NumberOfRetries", "BufferSizeInMBs", "BufferIntervalInSeconds"}
_PROCESSOR_IGNORED = {"RoleArn"}


class InvalidDeliveryStreamSettingsError(TemplateError):
    """Settings Firehose itself would refuse (CreateDeliveryStream's InvalidArgumentException)."""

    code = "InvalidArgumentException"


@dataclass(frozen=True)
class ProcessorSettings:
    """The Lambda processor, with Firehose's defaults (1 MB, 60 s, 3 retries)."""

    number_of_retries: int = 3
    buffer_size_bytes: int = MIB
    buffer_interval_s: float = 60
    lambda_arn: str | None = None  # None when it names a function only the aws flavour creates

    def __post_init__(self) -> None:
        _check_range("NumberOfRetries", self.number_of_retries, 0, 300)
        _check_range(
            "BufferSizeInMBs",
            self.buffer_size_bytes,
            FIREHOSE_PROCESSOR_BUFFER_MIN_BYTES,
            FIREHOSE_PROCESSOR_BUFFER_MAX_BYTES,
        )
        _check_range("BufferIntervalInSeconds", self.buffer_interval_s, 0, 900)


@dataclass(frozen=True)
class DeliveryStreamSettings:
    """What the emulation runs with; the defaults are Firehose's for an S3 destination."""

    delivery_stream_name: str
    source_stream_arn: str
    bucket_arn: str
    prefix: str = ""
    error_output_prefix: str | None = None
    buffer_size_bytes: int = 5 * MIB
    buffer_interval_s: float = 300
    compression_format: CompressionFormat = "UNCOMPRESSED"
    file_extension: str | None = None
    custom_time_zone: str = "UTC"
    dynamic_partitioning: bool = False
    processor: ProcessorSettings | None = None

    def __post_init__(self) -> None:
        _check_range("BufferingHints.SizeInMBs", self.buffer_size_bytes, MIB, 128 * MIB)
        _check_range("BufferingHints.IntervalInSeconds", self.buffer_interval_s, 0, 900)
        if self.dynamic_partitioning and self.buffer_size_bytes < DYNAMIC_PARTITIONING_MIN_BUFFER:
            raise InvalidDeliveryStreamSettingsError(
                "BufferingHints.SizeInMBs must be at least 64 when dynamic partitioning is enabled"
            )
        if self.compression_format not in _COMPRESSIONS:
            raise NotEmulatedError(
                f"CompressionFormat {self.compression_format!r} is not emulated; "
                f"use one of {_COMPRESSIONS}"
            )
        if not self.bucket_arn.startswith("arn:") or ":s3:::" not in self.bucket_arn:
            raise InvalidDeliveryStreamSettingsError(
                f"BucketARN {self.bucket_arn!r} is not an S3 ARN"
            )
        if self.file_extension and not self.file_extension.startswith("."):
            raise InvalidDeliveryStreamSettingsError("FileExtension must start with a '.'")
        try:
            self.time_zone()
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidDeliveryStreamSettingsError(
                f"CustomTimeZone {self.custom_time_zone!r} is not a time zone"
            ) from exc
        self.prefixes()  # Firehose's prefix rules, checked once here

    def time_zone(self) -> tzinfo:
        # UTC needs no time zone database (slim containers and Windows may have none).
        if self.custom_time_zone == "UTC":
            return UTC
        return ZoneInfo(self.custom_time_zone)

    @property
    def bucket_name(self) -> str:
        return self.bucket_arn.split(":::", 1)[1]

    def prefixes(self) -> Prefixes:
        return Prefixes.parse(
            self.prefix,
            self.error_output_prefix,
            dynamic_partitioning=self.dynamic_partitioning,
            has_lambda=self.processor is not None,
        )

    @property
    def extension(self) -> str:
        if self.file_extension:
            return self.file_extension
        return ".gz" if self.compression_format == "GZIP" else ""


def delivery_stream_settings(
    template: Mapping[str, Any], resolver: Resolver
) -> DeliveryStreamSettings:
    """Resolve the template's delivery stream into the settings the emulation runs with."""
    _, resource = find_resource(template, DELIVERY_STREAM)
    raw = resource.get("Properties", {})
    _refuse_unknown("the delivery stream", raw, _STREAM_EMULATED, _STREAM_IGNORED)
    kind = resolver.resolve(raw.get("DeliveryStreamType", "DirectPut"))
    if kind != "KinesisStreamAsSource":
        raise NotEmulatedError(
            f"DeliveryStreamType {kind!r}: only KinesisStreamAsSource is emulated"
        )
    source = raw.get("KinesisStreamSourceConfiguration", {})
    destination = raw.get("ExtendedS3DestinationConfiguration")
    if not isinstance(destination, Mapping):
        raise NotEmulatedError("only an ExtendedS3DestinationConfiguration is emulated")
    _refuse_unknown("ExtendedS3DestinationConfiguration", destination, _S3_EMULATED, _S3_IGNORED)
    if resolver.resolve(destination.get("S3BackupMode", "Disabled")) != "Disabled":
        raise NotEmulatedError("S3BackupMode Enabled (source record backup) is not emulated")

    def value(name: str) -> Any:
        return resolver.resolve(destination[name]) if name in destination else None

    hints = value("BufferingHints") or {}
    partitioning = value("DynamicPartitioningConfiguration") or {}
    return DeliveryStreamSettings(
        delivery_stream_name=str(resolver.resolve(raw["DeliveryStreamName"])),
        source_stream_arn=str(resolver.resolve(source["KinesisStreamARN"])),
        bucket_arn=str(value("BucketARN")),
        prefix=str(value("Prefix") or ""),
        error_output_prefix=_optional_str(value("ErrorOutputPrefix")),
        buffer_size_bytes=int(_number(hints, "SizeInMBs", 5) * MIB),
        buffer_interval_s=_number(hints, "IntervalInSeconds", 300),
        compression_format=cast(
            CompressionFormat, str(value("CompressionFormat") or "UNCOMPRESSED")
        ),
        file_extension=_optional_str(value("FileExtension")),
        custom_time_zone=str(value("CustomTimeZone") or "UTC"),
        dynamic_partitioning=_bool(partitioning.get("Enabled", False)),
        processor=_processor(destination.get("ProcessingConfiguration"), resolver),
    )


def _processor(raw: Any, resolver: Resolver) -> ProcessorSettings | None:
    if not isinstance(raw, Mapping) or not _bool(resolver.resolve(raw.get("Enabled", False))):
        return None
    processors = raw.get("Processors") or []
    kinds = [resolver.resolve(p.get("Type")) for p in processors]
    if kinds != ["Lambda"]:
        raise NotEmulatedError(f"processors {kinds}: only one Lambda processor is emulated")
    names = {p["ParameterName"]: p["ParameterValue"] for p in processors[0].get("Parameters", [])}
    _refuse_unknown("the Lambda processor", names, _PROCESSOR_EMULATED, _PROCESSOR_IGNORED)
    params = {n: resolver.resolve(v) for n, v in names.items() if n != "LambdaArn"}
    return ProcessorSettings(
        number_of_retries=int(_number(params, "NumberOfRetries", 3)),
        buffer_size_bytes=int(_number(params, "BufferSizeInMBs", 1) * MIB),
        buffer_interval_s=_number(params, "BufferIntervalInSeconds", 60),
        lambda_arn=_lambda_arn(names.get("LambdaArn"), resolver),
    )


def _lambda_arn(raw: Any, resolver: Resolver) -> str | None:
    # Usually !GetAtt of a function only the aws flavour creates: locally nothing gives its ARN.
    if raw is None:
        return None
    try:
        return str(resolver.resolve(raw))
    except TemplateError:
        return None


def _refuse_unknown(
    where: str, props: Mapping[str, Any], emulated: set[str], ignored: set[str]
) -> None:
    refused = set(props) - emulated - ignored
    if refused:
        raise NotEmulatedError(
            f"the Firehose emulation does not emulate {sorted(refused)} in {where}; implement "
            "them in tradestream/local/firehose*.py before adding them to the template"
        )


def _number(props: Mapping[str, Any], name: str, default: float) -> float:
    value = props.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise InvalidDeliveryStreamSettingsError(
            f"{name} must be a number, got {value!r}"
        ) from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidDeliveryStreamSettingsError(f"expected true or false, got {value!r}")


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidDeliveryStreamSettingsError(
            f"{name} must be between {low} and {high}, got {value}"
        )
