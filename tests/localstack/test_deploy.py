"""The hot path's deploy (``tradestream.local.stack``) against real LocalStack: what moto does not
show, because moto applies every change at once and reports exactly what it did."""

from __future__ import annotations

import uuid

import pytest

from tests.support.localstack import LocalStack
from tradestream import aws
from tradestream.local.stack import deploy

pytestmark = pytest.mark.localstack


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
