"""Shared fixtures: one moto server over real HTTP on loopback for the whole session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tradestream.local.moto_server import DUMMY_CREDENTIALS, MotoHandle, start_moto

# Fixtures that live beside their helpers, shared by several test modules.
pytest_plugins = ["tests.support.hotstore"]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoHandle]:
    # Without Kinesis' per-shard write limits: many tests put bursts with plain boto3 and assert
    # on the immediate answers. tests/functional/test_shard_limits.py runs a server with them,
    # and every embedded stack that starts its own moto server (the CLI's demo and up) has them.
    handle = start_moto(shard_limits=False)
    yield handle
    handle.stop()


@pytest.fixture
def aws_env(moto: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every AWS client built by tradestream.aws at the session's moto server."""
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    return moto.url


@pytest.fixture(autouse=True)
def _keep_log_level() -> Iterator[None]:
    """The CLI sets LOG_LEVEL=WARNING in os.environ for its own run; called in-process by a test,
    that would silence the INFO logs of every subprocess a later test starts."""
    before = os.environ.get("LOG_LEVEL")
    yield
    if before is None:
        os.environ.pop("LOG_LEVEL", None)
    else:
        os.environ["LOG_LEVEL"] = before


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests sharing the moto server never share resources."""
    return uuid.uuid4().hex[:8]
