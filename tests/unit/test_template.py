"""Reading the mapping and function settings from the templates, as CloudFormation resolves them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tradestream.cfn.template import (
    HOTSTORE_TEMPLATE,
    NotEmulatedError,
    TemplateError,
    effective_parameters,
    load_template,
    resolver_for,
    template_path,
)
from tradestream.local.esm.settings import (
    InvalidMappingSettingsError,
    MappingSettings,
    mapping_settings,
)
from tradestream.local.lambda_runtime import FunctionSettings, function_settings

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/trades"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:stock_trades-dlq"
HOTSTORE_OUTPUTS = {
    "TableName": "stock_trades",
    "DeadLetterQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/stock_trades-dlq",
    "DeadLetterQueueArn": DLQ_ARN,
}


@pytest.fixture(scope="module")
def hotstore() -> dict[str, object]:
    return load_template(template_path(HOTSTORE_TEMPLATE))


def _settings(
    template: dict[str, object], parameters: dict[str, str] | None = None
) -> MappingSettings:
    resolver = resolver_for(
        template,
        parameters={"StreamArn": STREAM_ARN, "Flavour": "local", **(parameters or {})},
        outputs=HOTSTORE_OUTPUTS,
    )
    return mapping_settings(template, resolver)


def _write(tmp_path: Path, body: str) -> dict[str, object]:
    path = tmp_path / "template.yaml"
    path.write_text(body)
    return load_template(path)


def test_hotstore_mapping_resolves_template_defaults_and_the_dlq_arn(
    hotstore: dict[str, object],
) -> None:
    # GIVEN the hotstore template deployed with only the required parameters
    # WHEN its mapping settings are read
    settings = _settings(hotstore)

    # THEN every value is the template's default, and the DLQ ARN comes from the stack outputs
    assert settings == MappingSettings(
        batch_size=500,
        maximum_batching_window_s=1,
        starting_position="TRIM_HORIZON",
        starting_position_timestamp=None,
        report_batch_item_failures=True,
        bisect_batch_on_function_error=True,
        maximum_retry_attempts=5,
        maximum_record_age_s=3600,
        on_failure_destination_arn=DLQ_ARN,
        parallelization_factor=1,
        enabled=True,
    )


def test_deployed_parameters_override_defaults_and_conditions_follow_them(
    hotstore: dict[str, object],
) -> None:
    # GIVEN parameters as CloudFormation passes them: strings
    parameters = {
        "BatchSize": "25",
        "MaximumBatchingWindowInSeconds": "0",
        "StartingPosition": "AT_TIMESTAMP",
        "StartingPositionTimestamp": "1700000000",
        "MaximumRetryAttempts": "-1",
        "MaximumRecordAgeInSeconds": "-1",
        "BisectBatchOnFunctionError": "false",
    }

    # WHEN the mapping settings are read
    settings = _settings(hotstore, parameters)

    # THEN the values are typed, and the Fn::If on StartsAtTimestamp kept the timestamp
    assert settings.batch_size == 25
    assert settings.maximum_batching_window_s == 0
    assert settings.starting_position == "AT_TIMESTAMP"
    assert settings.starting_position_timestamp == 1_700_000_000.0
    assert settings.maximum_retry_attempts == -1
    assert settings.maximum_record_age_s == -1
    assert settings.bisect_batch_on_function_error is False


def test_timestamp_is_dropped_by_aws_novalue_unless_starting_at_a_timestamp(
    hotstore: dict[str, object],
) -> None:
    # GIVEN a timestamp parameter but StartingPosition LATEST
    # WHEN the settings are read
    settings = _settings(hotstore, {"StartingPosition": "LATEST", "StartingPositionTimestamp": "5"})

    # THEN the property resolved to AWS::NoValue, as CloudFormation would remove it
    assert settings.starting_position == "LATEST"
    assert settings.starting_position_timestamp is None


def test_absent_properties_get_lambdas_defaults(tmp_path: Path) -> None:
    # GIVEN a mapping with only the required StartingPosition
    template = _write(
        tmp_path,
        """
Resources:
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: arn:aws:kinesis:us-east-1:123456789012:stream/s
      FunctionName: f
      StartingPosition: LATEST
""",
    )

    # WHEN it is read
    settings = mapping_settings(template, resolver_for(template))

    # THEN Lambda's documented defaults apply
    assert settings == MappingSettings(starting_position="LATEST")
    assert (settings.batch_size, settings.maximum_batching_window_s) == (100, 0)
    assert (settings.maximum_retry_attempts, settings.maximum_record_age_s) == (-1, -1)
    assert settings.report_batch_item_failures is False
    assert settings.bisect_batch_on_function_error is False
    assert settings.on_failure_destination_arn is None


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("BatchSize", "0"),
        ("BatchSize", "10001"),
        ("MaximumBatchingWindowInSeconds", "301"),
        ("MaximumRetryAttempts", "-2"),
        ("MaximumRetryAttempts", "10001"),
        ("MaximumRecordAgeInSeconds", "59"),
        ("MaximumRecordAgeInSeconds", "604801"),
        ("BatchSize", "2.5"),
    ],
)
def test_values_outside_lambdas_ranges_are_refused(
    hotstore: dict[str, object], parameter: str, value: str
) -> None:
    # GIVEN a deployed parameter Lambda itself would refuse
    # WHEN the settings are read THEN the error names the property
    with pytest.raises(InvalidMappingSettingsError, match=parameter):
        _settings(hotstore, {parameter: value})


def test_at_timestamp_without_a_timestamp_is_refused() -> None:
    # GIVEN / WHEN settings starting at a timestamp with none given THEN they are refused
    with pytest.raises(InvalidMappingSettingsError, match="StartingPositionTimestamp"):
        MappingSettings(starting_position="AT_TIMESTAMP")


def test_record_age_of_minus_one_means_infinite_and_is_accepted() -> None:
    # GIVEN / WHEN -1, outside the 60..604800 range THEN it is accepted as "no limit"
    assert replace(MappingSettings(), maximum_record_age_s=-1).maximum_record_age_s == -1


def test_a_property_the_emulation_does_not_implement_is_refused(tmp_path: Path) -> None:
    # GIVEN a mapping with filter criteria
    template = _write(
        tmp_path,
        """
Resources:
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      StartingPosition: LATEST
      FilterCriteria:
        Filters: [{Pattern: '{"data": {"s": ["AAPL"]}}'}]
""",
    )

    # WHEN it is read THEN the local run refuses to silently diverge from AWS
    with pytest.raises(NotEmulatedError, match="FilterCriteria"):
        mapping_settings(template, resolver_for(template))


def test_getatt_without_an_output_says_how_to_fix_it(hotstore: dict[str, object]) -> None:
    # GIVEN a resolver that knows no stack outputs
    resolver = resolver_for(hotstore, parameters={"StreamArn": STREAM_ARN})

    # WHEN the mapping (whose destination is !GetAtt DeadLetterQueue.Arn) is read
    # THEN the error points at the missing output
    with pytest.raises(TemplateError, match=r"DeadLetterQueue\.Arn: add a stack output"):
        mapping_settings(hotstore, resolver)


def test_parameters_are_checked_like_cloudformation_does(hotstore: dict[str, object]) -> None:
    # GIVEN / WHEN / THEN a missing required parameter, a value not allowed, an unknown name
    with pytest.raises(TemplateError, match="StreamArn"):
        effective_parameters(hotstore, {})
    with pytest.raises(TemplateError, match="Flavour"):
        effective_parameters(hotstore, {"StreamArn": STREAM_ARN, "Flavour": "gcp"})
    with pytest.raises(TemplateError, match="Nope"):
        effective_parameters(hotstore, {"StreamArn": STREAM_ARN, "Nope": "1"})


def test_effective_parameters_are_strings_with_defaults_filled_in(
    hotstore: dict[str, object],
) -> None:
    # GIVEN only the required parameter WHEN parameters are resolved
    values = effective_parameters(hotstore, {"StreamArn": STREAM_ARN})

    # THEN YAML numbers and booleans became CloudFormation's strings
    assert values["BatchSize"] == "500"
    assert values["BisectBatchOnFunctionError"] == "true"
    assert values["Flavour"] == "aws"
    assert values["TableName"] == "stock_trades"


def test_sub_and_pseudo_parameters_resolve(hotstore: dict[str, object]) -> None:
    # GIVEN the log group name, written with !Sub over a parameter
    resolver = resolver_for(hotstore, parameters={"StreamArn": STREAM_ARN}, region="eu-west-1")
    log_group = hotstore["Resources"]["FunctionLogGroup"]["Properties"]  # type: ignore[index]

    # WHEN it is resolved THEN the parameter's default is substituted
    assert resolver.resolve(log_group["LogGroupName"]) == "/aws/lambda/tradestream-hotstore"
    assert resolver.resolve({"Fn::Sub": "${AWS::Region}-${!Literal}"}) == "eu-west-1-${Literal}"


def test_the_function_settings_resolve_environment_from_parameters_and_outputs(
    hotstore: dict[str, object],
) -> None:
    # GIVEN the hotstore template deployed with a 7-day TTL
    resolver = resolver_for(
        hotstore,
        parameters={"StreamArn": STREAM_ARN, "TtlDays": "7"},
        outputs=HOTSTORE_OUTPUTS,
    )

    # WHEN the function's settings are read (its role and code exist only on AWS)
    settings = function_settings(hotstore, resolver)

    # THEN the environment is what Lambda would get, the table and queue from the outputs
    assert settings == FunctionSettings(
        function_name="tradestream-hotstore",
        handler="lambdas.hotstore.handler.handler",
        runtime="python3.12",
        timeout_s=60,
        memory_limit_in_mb=256,
        environment={
            "TABLE_NAME": "stock_trades",
            "DLQ_URL": HOTSTORE_OUTPUTS["DeadLetterQueueUrl"],
            "TTL_DAYS": "7",
            "POWERTOOLS_SERVICE_NAME": "hotstore",
            "POWERTOOLS_METRICS_NAMESPACE": "tradestream",
        },
    )
