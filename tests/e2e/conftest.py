"""The embedded stack for end-to-end tests: moto server, the templates deployed through its
CloudFormation API, the emulated event source mapping running the real hotstore handler, and a
fault proxy in front of Kinesis and DynamoDB so faults can be injected into any run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.faults import FaultProxy
from tradestream.local.moto_server import MotoHandle
from tradestream.local.runtime import EmbeddedStack, embedded_stack
from tradestream.local.settings import LocalSettings


@dataclass
class HotPath:
    stack: EmbeddedStack
    proxy: FaultProxy

    @property
    def stream(self) -> str:
        return self.stack.stack.stream_name

    @property
    def table(self) -> str:
        return self.stack.stack.table_name


@pytest.fixture
def hot_path(
    aws_env: str, moto: MotoHandle, unique: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HotPath]:
    with FaultProxy(moto.url, seed=11) as proxy:
        # Producer puts and handler writes go through the proxy; everything else straight to moto.
        monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", proxy.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        settings = LocalSettings(
            stream_name=f"e2e-{unique}",
            table_name=f"e2e_trades_{unique}",
            poll_interval_seconds=0.1,
        )
        with embedded_stack(settings, with_lake=False) as stack:
            yield HotPath(stack=stack, proxy=proxy)
