"""producer.app.run in-process over a fake Kinesis client: endings, errors, progress, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from producer.app import ProducerError, ProducerStats, run
from producer.settings import ProducerSettings
from producer.sources.base import Frame, SourceStats
from producer.sources.finnhub import FinnhubAuthError
from producer.sources.synthetic import SyntheticSource
from tests.unit.test_producer_publisher import FakeKinesis, client_error, trades

SYMBOLS = ("AAPL", "MSFT")


def settings(**overrides: Any) -> ProducerSettings:
    # Plain records (one per trade) whatever AGGREGATION's default: the fake stores Data as is.
    base = {"source": "synthetic", "linger_ms": 0, "shutdown_deadline_seconds": 2}
    return ProducerSettings(**{**base, "aggregation": False, **overrides})


class FailingSource:
    """Emits one frame, then fails the way Finnhub does when the key is refused."""

    def __init__(self) -> None:
        self.stats = SourceStats()

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        frame = trades(3)
        self.stats.frames, self.stats.trades, self.stats.distinct = 1, 3, 3
        yield frame
        raise FinnhubAuthError("Finnhub refused the API key (HTTP 401): check FINNHUB_API_KEY")


async def test_runs_until_the_source_ends_and_reports_progress() -> None:
    # GIVEN a source of 250 distinct trades and a progress callback
    source = SyntheticSource(SYMBOLS, seed=2, max_trades=250)
    client = FakeKinesis()
    seen: list[ProducerStats] = []
    # WHEN the producer runs
    stats = await run(settings(), source=source, kinesis=client, on_progress=seen.append)
    # THEN it stopped because the source ended, with everything published
    assert stats.stopped_by == "source_end"
    assert (stats.distinct, stats.trades) == (250, source.stats.trades)
    assert stats.published == stats.received == len(client.stored) == stats.trades
    assert stats.source == "SyntheticSource"
    # AND the last progress report is the final count
    assert seen[-1] == stats


async def test_stop_before_start_stops_at_once() -> None:
    stop = asyncio.Event()
    stop.set()
    source = SyntheticSource(SYMBOLS, seed=2)
    stats = await asyncio.wait_for(
        run(settings(), source=source, kinesis=FakeKinesis(), stop=stop), 5
    )
    assert stats.stopped_by == "stop"
    assert stats.published == stats.received
    assert stats.failed == 0


async def test_a_fatal_publisher_error_raises_with_the_final_counts() -> None:
    # GIVEN a stream that does not exist
    client = FakeKinesis(script=[client_error("ResourceNotFoundException", 400)])
    source = SyntheticSource(SYMBOLS, seed=2, max_trades=50)
    # WHEN the producer runs THEN it raises with AWS's code, and the stats account for every trade
    with pytest.raises(ProducerError, match="create it or set STREAM_NAME") as error:
        await asyncio.wait_for(run(settings(), source=source, kinesis=client), 5)
    assert error.value.code == "ResourceNotFoundException"
    stats = error.value.stats
    assert stats.stopped_by == "error"
    assert stats.received == stats.failed + stats.published
    assert stats.published == 0
    assert stats.failed > 0


async def test_a_fatal_source_error_flushes_first_then_raises() -> None:
    # GIVEN a source that fails after one frame
    client = FakeKinesis()
    # WHEN the producer runs
    with pytest.raises(ProducerError, match="check FINNHUB_API_KEY") as error:
        await asyncio.wait_for(run(settings(), source=FailingSource(), kinesis=client), 5)
    # THEN the frame it did deliver was published before the error surfaced
    assert error.value.code == "FinnhubUnauthorized"
    assert (error.value.stats.published, error.value.stats.failed) == (3, 0)
    assert len(client.stored) == 3


async def test_cancelling_run_leaves_no_task_behind() -> None:
    # GIVEN a producer stuck on a stream that never answers
    client = FakeKinesis()
    client.gate = asyncio.Event()
    source = SyntheticSource(SYMBOLS, seed=2)
    producer = asyncio.create_task(run(settings(), source=source, kinesis=client))
    await asyncio.sleep(0.2)
    # WHEN it is cancelled from outside
    producer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await producer
    # THEN none of its tasks survive it
    assert asyncio.all_tasks() == {asyncio.current_task()}
