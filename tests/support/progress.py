"""The producer's progress reports (``on_progress``), collected so a test can wait on them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from producer.app import ProducerStats


class Progress:
    """Collects the producer's progress reports so a test can wait for a condition on them."""

    def __init__(self) -> None:
        self.latest: ProducerStats | None = None
        self._reported = asyncio.Event()

    def report(self, stats: ProducerStats) -> None:
        self.latest = stats
        self._reported.set()

    async def until(self, condition: Callable[[ProducerStats], bool], within: float = 5) -> None:
        async with asyncio.timeout(within):
            while self.latest is None or not condition(self.latest):
                self._reported.clear()
                await self._reported.wait()
