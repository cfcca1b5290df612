"""The hot path's deploy (``tradestream.local.hot_path``) against real LocalStack: what moto does
not show, because moto applies every change at once and reports exactly what it did."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.support.localstack import LocalStack
from tradestream import aws
from tradestream.local.hot_path import deploy

# Room for building LocalStack's cached venv when one of these is the first test of a machine.
pytestmark = [pytest.mark.localstack, pytest.mark.timeout(600)]


@pytest.fixture
def at_localstack(localstack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> str:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_CLOUDFORMATION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", localstack.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return uuid.uuid4().hex[:8]


def test_deploy_returns_the_stream_active_again_after_enabling_encryption(
    at_localstack: str,
) -> None:
    # GIVEN kinesis-mock, which keeps a stream UPDATING for a while after StartStreamEncryption,
    # as Kinesis does
    # WHEN a new stream is deployed (its encryption is applied after the stack, through the API)
    stack = deploy(stream_name=f"enc-{at_localstack}", table_name=f"enc-{at_localstack}")

    # THEN deploy returns a stream that is encrypted and ACTIVE: writable, and updatable by the
    # next deploy
    summary = aws.client("kinesis").describe_stream_summary(StreamARN=stack.stream_arn)
    assert summary["StreamDescriptionSummary"]["EncryptionType"] == "KMS"
    assert summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


def test_a_stack_update_the_endpoint_did_not_apply_is_reported_not_claimed(
    at_localstack: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a stream deployed with 24 h retention
    names = {"stream_name": f"ret-{at_localstack}", "table_name": f"ret-{at_localstack}"}
    deploy(**names, stream_parameters={"RetentionPeriodHours": "24"})

    # WHEN the stack is updated to 48 h
    with caplog.at_level(logging.INFO, logger="tradestream"):
        stack = deploy(**names, stream_parameters={"RetentionPeriodHours": "48"})

    # THEN LocalStack 4.14 reports the update complete without applying it ...
    summary = aws.client("kinesis").describe_stream_summary(StreamARN=stack.stream_arn)
    assert summary["StreamDescriptionSummary"]["RetentionPeriodHours"] == 24
    # ... and deploy, reading the stream back, says so instead of taking the update as made
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("RetentionPeriodHours" in w and "48" in w and "24" in w for w in warnings), (
        caplog.messages
    )
