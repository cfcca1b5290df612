"""`tradestream up --source ...`: run a producer beside the embedded stack, in a thread of its own
with its own event loop, stopped (and flushed) when the stack is asked to stop."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tradestream.local.runtime import EmbeddedStack, ModelServer


def producer_overrides(source: str) -> dict[str, Any] | None:
    """Map the CLI's --source value onto producer settings; None means no producer."""
    if source == "none":
        return None
    if source in ("synthetic", "finnhub"):
        return {"source": source}
    if source.startswith("replay:") and len(source) > len("replay:"):
        return {"source": "replay", "replay_file": source.removeprefix("replay:")}
    raise ValueError(f"unknown source {source!r}: use synthetic, finnhub, replay:FILE or none")


def start_model_server() -> ModelServer:
    """The local SageMaker-compatible model server (ml/ is a deployable: wired in here)."""
    from ml.serve import start_in_thread

    return start_in_thread()


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


@contextmanager
def start_ingest(stack: EmbeddedStack) -> Iterator[None]:
    """Run the ingest API beside the stack when API keys are configured (it refuses to run
    without any), and add its URL to the ready line; it is stopped, drained, on the way out."""
    if not (os.environ.get("INGEST_API_KEYS") or os.environ.get("INGEST_API_KEYS_SECRET")):
        yield
        return
    from ingest_api import IngestSettings, start_in_thread

    port = int(os.environ.get("INGEST_PORT", "0"))
    settings = IngestSettings(
        stream_name=stack.stack.stream_name, table_name=stack.stack.table_name
    )
    server = start_in_thread(settings, port=port)
    stack.extra["ingest_url"] = server.url
    try:
        yield
    finally:
        server.stop()
