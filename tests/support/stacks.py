"""The embedded stack with its lake, against the session's moto server and a fake SageMaker
endpoint, as several tests run it: fast polls, and the transform invoked without waiting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.fake_sagemaker import FakeSageMaker
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
