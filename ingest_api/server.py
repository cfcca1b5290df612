"""Running the app under uvicorn: in the foreground (``tradestream ingest``, the container) or in a
background thread of a process that does other work (``tradestream up``).

Foreground: uvicorn owns SIGTERM/SIGINT (with WORKERS > 1, workers.py's supervisor forwards them);
shutdown lets in-flight requests finish (their trades are in the batcher), then the lifespan
drains the buffer, both within configured deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import uvicorn

from tradestream.serving import ThreadedServer

from .app import create_app
from .listen import uvicorn_config
from .settings import IngestSettings
from .workers import run_workers


def serve(host: str, port: int, settings: IngestSettings | None = None) -> None:
    """Serve until SIGTERM/SIGINT. Raises SystemExit(3) when startup fails.

    With WORKERS > 1, that many processes serve the port (workers.py), each with its own event
    loop and batcher.
    """
    settings = settings or IngestSettings()
    if settings.workers > 1:
        run_workers(settings, host, port)
        return
    app = create_app(settings, freeze_gc=True)
    uvicorn.Server(uvicorn_config(app, settings, host, port)).run()


@dataclass
class RunningServer(ThreadedServer):
    app: Any = None

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop: finish requests, drain the buffer; force after ``timeout`` seconds."""
        settings: IngestSettings = self.app.state.ingest.settings
        limit = timeout or settings.graceful_shutdown_seconds + settings.drain_timeout_seconds + 5
        super().stop(limit)


def start_in_thread(
    settings: IngestSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    app: Any | None = None,
    startup_timeout: float = 15.0,
) -> RunningServer:
    """Start the server on its own event loop in a daemon thread; return once it accepts requests
    (``tradestream.serving``: port 0 gives a free port; the caller decides when to ``stop()``)."""
    settings = settings or IngestSettings()
    app = app or create_app(settings)
    # One process here: WORKERS applies to serve() only, which owns its process.
    return RunningServer.start(
        uvicorn_config(app, settings, host, port),
        name="ingest-api",
        startup_timeout=startup_timeout,
        app=app,
    )
