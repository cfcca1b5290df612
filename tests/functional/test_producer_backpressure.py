"""With Kinesis unreachable the buffer stays bounded and the source is held back (backpressure)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from producer.app import run
from producer.settings import ProducerSettings
from producer.sources.synthetic import SyntheticSource


def closed_port() -> int:
    """A loopback port nobody listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_kinesis_blocks_the_source_and_bounds_the_buffer(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN Kinesis at a closed port, a 300-record buffer and an unthrottled endless source
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    settings = ProducerSettings(
        stream_name="nowhere",
        source="synthetic",
        buffer_max_records=300,
        batch_max_records=100,
        linger_ms=0,
        max_put_attempts=100,
        put_backoff_base_seconds=0.05,
        put_backoff_max_seconds=0.2,
        shutdown_deadline_seconds=0.5,
    )
    source = SyntheticSource(settings.symbols, seed=1)
    stop = asyncio.Event()
    peaks: list[int] = []
    producer = asyncio.create_task(
        run(settings, source=source, stop=stop, on_progress=lambda s: peaks.append(s.buffered))
    )
    # WHEN it runs for two seconds
    await asyncio.sleep(1.0)
    emitted_after_1s = source.stats.trades
    await asyncio.sleep(1.0)
    emitted_after_2s = source.stats.trades
    stop.set()
    stats = await asyncio.wait_for(producer, 5)
    # THEN the source was blocked: it emitted nothing in the second second
    assert emitted_after_1s == emitted_after_2s
    # AND the buffer filled to exactly its bound and never beyond, while calls kept failing
    assert stats.buffered_peak == stats.received == 300
    assert max(peaks) == 300
    assert source.stats.trades - 300 < 10  # at most the rest of the frame being put
    assert stats.call_errors >= 5
    # AND at the deadline the 300 unpublished trades were counted failed (and logged)
    assert (stats.published, stats.failed, stats.buffered) == (0, 300, 0)
    assert stats.stopped_by == "stop"
