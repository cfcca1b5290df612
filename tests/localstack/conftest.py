"""The localstack tier: one real LocalStack for the session (see tests/support/localstack.py).

Skipped, saying why, on a machine without Python 3.13 or node/npm; a LocalStack that already runs
is used instead when TRADESTREAM_LOCALSTACK_ENDPOINT names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import localstack as ls


@pytest.fixture(scope="session")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ls.LocalStack]:
    endpoint = ls.running_endpoint()
    if endpoint is not None:
        yield ls.LocalStack(endpoint)
        return
    try:
        running = ls.start(ls.compose_services(), Path(tmp_path_factory.mktemp("localstack")))
    except ls.LocalStackUnavailableError as exc:
        pytest.skip(f"LocalStack cannot run on this host: {exc}")
    try:
        yield running
    finally:
        running.stop()
