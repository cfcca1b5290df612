"""Shared fixtures: one moto server over real HTTP on loopback for the whole session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tradestream.local.moto_server import DUMMY_CREDENTIALS, MotoHandle, start_moto

# Fixtures that live beside their helpers, shared by several test modules.
pytest_plugins = ["tests.support.hotstore"]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoHandle]:
    handle = start_moto()
    yield handle
    handle.stop()


@pytest.fixture
def aws_env(moto: MotoHandle, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every AWS client built by tradestream.aws at the session's moto server."""
    for key in list(__import__("os").environ):
        if key.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    return moto.url


@pytest.fixture
def unique() -> str:
    """A short random suffix so tests sharing the moto server never share resources."""
    return uuid.uuid4().hex[:8]
