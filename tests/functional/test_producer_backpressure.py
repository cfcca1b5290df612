"""With Kinesis unreachable the buffer stays bounded and the source is held back (backpressure)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from producer.app import ProducerStats, run
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
    full = asyncio.Event()

    def progress(stats: ProducerStats) -> None:
        peaks.append(stats.buffered)
        if stats.buffered >= 300:
            full.set()

    producer = asyncio.create_task(run(settings, source=source, stop=stop, on_progress=progress))
    # WHEN it runs until the buffer is full (the first second or so goes to building the client
    # on a busy machine), then one second more
    await asyncio.wait_for(full.wait(), 10)
    await asyncio.sleep(0.2)  # the rest of the frame being put
    emitted_when_full = source.stats.trades
    await asyncio.sleep(1.0)
    emitted_a_second_later = source.stats.trades
    stop.set()
    stats = await asyncio.wait_for(producer, 5)
    # THEN the source was blocked: it emitted nothing in that second
    assert emitted_when_full == emitted_a_second_later
    # AND the buffer filled to exactly its bound and never beyond, while calls kept failing
    assert stats.buffered_peak == stats.received == 300
    assert max(peaks) == 300
    assert source.stats.trades - 300 < 10  # at most the rest of the frame being put
    assert stats.call_errors >= 5
    # AND at the deadline the 300 unpublished trades were counted failed (and logged)
    assert (stats.published, stats.failed, stats.buffered) == (0, 300, 0)
    assert stats.stopped_by == "stop"
