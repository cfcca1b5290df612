"""The enrich function's settings: defaults sized for its timeout, unsafe values refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lambdas.enrich.settings import SAGEMAKER_MAX_PAYLOAD_BYTES, EnrichSettings
from tradestream.cfn.template import TEMPLATE_DIR, load_template


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENDPOINT_NAME", "ON_INFERENCE_FAILURE", "MAX_CHUNK_BYTES"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_deliver_null_predictions_and_chunk_under_the_payload_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN only the endpoint name in the environment
    monkeypatch.setenv("ENDPOINT_NAME", "tradestream-model")

    # WHEN the settings are read
    settings = EnrichSettings()  # type: ignore[call-arg]

    # THEN failures deliver null predictions and chunks stay well under 6 MB
    assert settings.endpoint_name == "tradestream-model"
    assert settings.on_inference_failure == "deliver_null"
    assert settings.max_chunk_bytes == 1024 * 1024
    assert settings.max_invoke_attempts == 4
    assert settings.attempt_seconds == 22
    assert settings.drop_duplicates is True


def test_the_failure_mode_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN ON_INFERENCE_FAILURE=fail WHEN read THEN it is kept
    monkeypatch.setenv("ENDPOINT_NAME", "m")
    monkeypatch.setenv("ON_INFERENCE_FAILURE", "fail")
    assert EnrichSettings().on_inference_failure == "fail"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENDPOINT_NAME", "has_underscore"),
        ("ENDPOINT_NAME", "-leading-dash"),
        ("ON_INFERENCE_FAILURE", "ignore"),
        ("MAX_CHUNK_BYTES", str(SAGEMAKER_MAX_PAYLOAD_BYTES)),
        ("MAX_CHUNK_BYTES", "100"),
        ("READ_TIMEOUT_SECONDS", "120"),
        ("MAX_INVOKE_ATTEMPTS", "0"),
        ("BACKOFF_MAX_SECONDS", "0.01"),
    ],
)
def test_unsafe_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    # GIVEN a valid environment with one unsafe value
    monkeypatch.setenv("ENDPOINT_NAME", "tradestream-model")
    monkeypatch.setenv(name, value)

    # WHEN read THEN the settings are refused, naming the variable
    with pytest.raises(ValidationError) as caught:
        EnrichSettings()  # type: ignore[call-arg]
    assert name.lower() in str(caught.value)


def test_the_template_gives_the_function_more_time_than_one_attempt_and_its_reserve() -> None:
    # GIVEN the lake template's function and the default settings
    template = load_template(TEMPLATE_DIR / "lake.yaml")
    function = template["Resources"]["EnrichFunction"]["Properties"]
    defaults = EnrichSettings(endpoint_name="m")

    # WHEN its timeout is compared with the longest attempt plus the answer reserve
    # THEN an attempt can always time out before the function does
    assert function["Timeout"] > defaults.attempt_seconds + defaults.retry_reserve_seconds
