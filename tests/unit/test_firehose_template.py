"""Reading the delivery stream's settings from the lake template (no deploy)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from tradestream.cfn.template import TEMPLATE_DIR, NotEmulatedError, load_template, resolver_for
from tradestream.local.firehose.settings import (
    MIB,
    DeliveryStreamSettings,
    InvalidDeliveryStreamSettingsError,
    ProcessorSettings,
    delivery_stream_settings,
)

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/trades"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_DIR / "lake.yaml")


def read(template: dict[str, Any], **parameters: str) -> DeliveryStreamSettings:
    resolver = resolver_for(
        template,
        parameters={"StreamArn": STREAM_ARN, "BucketName": "lake-bucket", **parameters},
        outputs={"BucketName": "lake-bucket", "BucketArn": "arn:aws:s3:::lake-bucket"},
    )
    return delivery_stream_settings(template, resolver)


def stream(template: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(template)


def test_the_lake_templates_delivery_stream_resolves_with_its_defaults(
    template: dict[str, Any],
) -> None:
    # GIVEN the lake template with default parameters WHEN its delivery stream is read
    settings = read(template)

    # THEN every honoured property has the template's value
    assert settings.delivery_stream_name == "tradestream-lake"
    assert settings.source_stream_arn == STREAM_ARN
    assert (settings.bucket_arn, settings.bucket_name) == (
        "arn:aws:s3:::lake-bucket",
        "lake-bucket",
    )
    assert settings.prefix.startswith("trades/symbol=!{partitionKeyFromLambda:symbol}/")
    assert settings.error_output_prefix == (
        "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
    )
    assert (settings.buffer_size_bytes, settings.buffer_interval_s) == (64 * MIB, 300)
    assert (settings.compression_format, settings.extension) == ("GZIP", ".gz")
    assert settings.dynamic_partitioning is True
    # AND the Lambda processor's buffer and retries; its ARN names a function not created locally
    assert settings.processor == ProcessorSettings(
        number_of_retries=3, buffer_size_bytes=MIB, buffer_interval_s=60, lambda_arn=None
    )


def test_parameters_drive_the_buffering_knobs(template: dict[str, Any]) -> None:
    # GIVEN other buffering and compression parameters WHEN read THEN they are used
    settings = read(
        template,
        ProcessorBufferSizeInMBs="0.2",
        ProcessorBufferIntervalInSeconds="0",
        NumberOfRetries="0",
        BufferSizeInMBs="128",
        BufferIntervalInSeconds="60",
        CompressionFormat="UNCOMPRESSED",
    )
    assert settings.processor is not None
    assert settings.processor.buffer_size_bytes == int(0.2 * MIB)
    assert (settings.processor.buffer_interval_s, settings.processor.number_of_retries) == (0, 0)
    assert (settings.buffer_size_bytes, settings.buffer_interval_s) == (128 * MIB, 60)
    assert (settings.compression_format, settings.extension) == ("UNCOMPRESSED", "")


@pytest.mark.parametrize(
    ("path", "value", "error", "message"),
    [
        (("DeliveryStreamType",), "DirectPut", NotEmulatedError, "KinesisStreamAsSource"),
        (("ExtendedS3DestinationConfiguration", "S3BackupMode"), "Enabled", NotEmulatedError,
         "backup"),
        (("ExtendedS3DestinationConfiguration", "DataFormatConversionConfiguration"), {},
         NotEmulatedError, "DataFormatConversionConfiguration"),
        (("ExtendedS3DestinationConfiguration", "CompressionFormat"), "Snappy", NotEmulatedError,
         "Snappy"),
        (("ExtendedS3DestinationConfiguration", "BufferingHints", "SizeInMBs"), 5,
         InvalidDeliveryStreamSettingsError, "at least 64"),
        (("ExtendedS3DestinationConfiguration", "CustomTimeZone"), "Mars/Olympus",
         InvalidDeliveryStreamSettingsError, "time zone"),
    ],
    ids=["direct-put", "backup", "format-conversion", "snappy", "small-buffer", "time-zone"],
)  # fmt: skip
def test_what_the_emulation_cannot_honour_is_refused(
    template: dict[str, Any],
    path: tuple[str, ...],
    value: Any,
    error: type[Exception],
    message: str,
) -> None:
    # GIVEN the template with one property the emulation cannot honour
    changed = stream(template)
    target = changed["Resources"]["DeliveryStream"]["Properties"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    # WHEN read THEN it is refused, naming the problem
    with pytest.raises(error, match=message):
        read(changed)


def test_a_second_processor_is_refused(template: dict[str, Any]) -> None:
    # GIVEN an extra AppendDelimiterToRecord processor WHEN read THEN it is not emulated
    changed = stream(template)
    config = changed["Resources"]["DeliveryStream"]["Properties"][
        "ExtendedS3DestinationConfiguration"
    ]["ProcessingConfiguration"]
    config["Processors"].append({"Type": "AppendDelimiterToRecord"})
    with pytest.raises(NotEmulatedError, match="only one Lambda processor"):
        read(changed)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"buffer_size_bytes": 129 * MIB}, "SizeInMBs"),
        ({"buffer_interval_s": 901}, "IntervalInSeconds"),
        ({"bucket_arn": "lake-bucket"}, "S3 ARN"),
        ({"file_extension": "gz"}, "FileExtension"),
    ],
)
def test_settings_out_of_firehoses_ranges_are_refused(
    template: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    # GIVEN valid settings WHEN one is set out of range THEN it is refused
    settings = replace(read(template), dynamic_partitioning=False, prefix="", processor=None,
                       error_output_prefix=None, buffer_size_bytes=5 * MIB)  # fmt: skip
    with pytest.raises(InvalidDeliveryStreamSettingsError, match=message):
        replace(settings, **change)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"buffer_size_bytes": 4 * MIB}, "BufferSizeInMBs"), ({"number_of_retries": 301}, "Retries")],
)
def test_processor_settings_out_of_range_are_refused(change: dict[str, Any], message: str) -> None:
    # GIVEN processor settings out of Firehose's ranges WHEN built THEN refused
    with pytest.raises(InvalidDeliveryStreamSettingsError, match=message):
        ProcessorSettings(**change)
