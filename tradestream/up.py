"""`tradestream up --source ...`: run a producer beside the embedded stack, in a thread of its own
with its own event loop, stopped (and flushed) when the stack is asked to stop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tradestream.local.runtime import EmbeddedStack


def producer_overrides(source: str) -> dict[str, Any] | None:
    """Map the CLI's --source value onto producer settings; None means no producer."""
    if source == "none":
        return None
    if source in ("synthetic", "finnhub"):
        return {"source": source}
    if source.startswith("replay:") and len(source) > len("replay:"):
        return {"source": "replay", "replay_file": source.removeprefix("replay:")}
    raise ValueError(f"unknown source {source!r}: use synthetic, finnhub, replay:FILE or none")


def run_source(source: str, stack: EmbeddedStack, stop: threading.Event) -> threading.Thread | None:
    overrides = producer_overrides(source)
    if overrides is None:
        return None
    from producer.app import run as run_producer  # the launcher imports the deployable
    from producer.settings import ProducerSettings

    settings = ProducerSettings(stream_name=stack.stack.stream_name, **overrides)

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(
            target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)), daemon=True
        ).start()
        await run_producer(settings, stop=stopping)

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="producer", daemon=True)
    thread.start()
    return thread
