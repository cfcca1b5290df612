"""The same stacks and hot path against LocalStack (the compose image), via testcontainers.

Marked ``docker``: they need a Docker daemon and skip cleanly when none answers (as on the
machine this project is built on), unless ``TRADESTREAM_LOCALSTACK_ENDPOINT`` names a LocalStack
that already runs (a CI service container, one started by hand): then they use it, no Docker
needed. The tests/localstack tier runs LocalStack itself, on the host.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.localstack import ENDPOINT_ENV, running_endpoint
from tradestream import readback
from tradestream.local.runtime import EmbeddedStack, embedded_stack
from tradestream.local.settings import LocalSettings

pytestmark = pytest.mark.docker

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
COMPOSE_IMAGE = yaml.safe_load(COMPOSE.read_text())["services"]["localstack"]["image"]
# "${LOCALSTACK_IMAGE:-localstack/localstack:4.14.0}" -> the default
IMAGE = os.environ.get("LOCALSTACK_IMAGE") or COMPOSE_IMAGE.split(":-", 1)[1].rstrip("}")


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # any failure to reach a daemon means: no Docker here
        return False
    return True


@pytest.fixture(scope="module")
def localstack() -> Iterator[str]:
    endpoint = running_endpoint()
    if endpoint is not None:
        yield endpoint
        return
    if not docker_available():
        pytest.skip(f"no Docker daemon answers and {ENDPOINT_ENV} names no running LocalStack")
    from testcontainers.community.localstack import LocalStackContainer

    with LocalStackContainer(image=IMAGE) as container:
        yield container.get_url()


@pytest.fixture
def stack(localstack: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedStack]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", localstack)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # Names of its own: a LocalStack that already runs may hold compose's "trades" stacks.
    settings = LocalSettings(stream_name=f"trades-{unique}", table_name=f"stock_trades-{unique}")
    with embedded_stack(settings, with_lake=False) as running:
        yield running


def test_the_compose_image_is_the_pinned_community_one() -> None:
    # no daemon needed: the image these tests run is the one compose pins
    assert IMAGE == "localstack/localstack:4.14.0" or os.environ.get("LOCALSTACK_IMAGE")


def test_trades_reach_dynamodb_through_localstack(stack: EmbeddedStack) -> None:
    from producer.app import run
    from producer.settings import ProducerSettings

    settings = ProducerSettings(
        source="synthetic", stream_name=stack.stack.stream_name, max_trades=500
    )
    stats = asyncio.run(run(settings))
    assert stack.mapping is not None
    assert stack.mapping.wait_caught_up(60)
    assert readback.count_items(stack.stack.table_name) == stats.distinct == 500
