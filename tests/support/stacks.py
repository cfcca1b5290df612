"""The embedded stack with its lake, against the session's moto server and a fake SageMaker
endpoint, as several tests run it: fast polls, and the transform invoked without waiting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.fake_sagemaker import FakeSageMaker
from tradestream import aws
from tradestream.local.runtime import EmbeddedStack, embedded_stack
from tradestream.local.settings import LocalSettings


@contextmanager
def embedded_lake_stack(
    name: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmbeddedStack]:
    """Stream ``<name>-<unique>``, table ``<name>_trades_<unique>``, bucket ``<name>-lake-…``."""
    with FakeSageMaker() as sagemaker:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", sagemaker.url)
        settings = LocalSettings(
            stream_name=f"{name}-{unique}",
            table_name=f"{name}_trades_{unique}",
            bucket_name=f"{name}-lake-{unique}",
            poll_interval_seconds=0.05,
            lake_processor_interval_seconds=0,
        )
        with embedded_stack(settings) as running:
            yield running


WAIT_S = 60.0
Item = dict[str, Any]  # a DynamoDB item, attribute values as the low-level client gives them


def settle(stack: EmbeddedStack) -> None:
    """Wait until both consumers have handled everything put so far, the lake flushed to S3."""
    assert stack.mapping is not None
    assert stack.firehose is not None
    assert stack.mapping.wait_caught_up(WAIT_S)
    assert stack.firehose.wait_caught_up(WAIT_S, flush=True)


def items(table: str) -> dict[tuple[str, str], Item]:
    """Every item of the table by its key (s, sk)."""
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return {(i["s"]["S"], i["sk"]["S"]): i for page in pages for i in page["Items"]}
