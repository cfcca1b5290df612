"""Running the app under uvicorn: in the foreground (``tradestream ingest``, the container) or in a
background thread of a process that does other work (``tradestream up``).

Foreground: uvicorn owns SIGTERM/SIGINT (with WORKERS > 1, workers.py's supervisor forwards them);
shutdown lets in-flight requests finish (their trades are in the batcher), then the lifespan
drains the buffer, both within configured deadlines.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from .app import create_app
from .listen import bind_socket, uvicorn_config
from .settings import IngestSettings
from .workers import run_workers


class IngestStartupError(RuntimeError):
    """The server did not come up; uvicorn logged why."""

    code = "IngestStartupFailed"


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
class RunningServer:
    url: str
    host: str
    port: int
    app: Any
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop: finish requests, drain the buffer; force after ``timeout`` seconds."""
        settings: IngestSettings = self.app.state.ingest.settings
        limit = timeout or settings.graceful_shutdown_seconds + settings.drain_timeout_seconds + 5
        self._server.should_exit = True
        self._thread.join(limit)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._server.started

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_in_thread(
    settings: IngestSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    app: Any | None = None,
    startup_timeout: float = 15.0,
) -> RunningServer:
    """Start the server on its own event loop in a daemon thread; return once it accepts requests.

    The socket is bound here, so port 0 gives a free port that is known before returning, and a
    port in use fails in the caller's thread. Signals stay with the main thread (uvicorn only
    installs handlers there), so the caller decides when to ``stop()``.
    """
    settings = settings or IngestSettings()
    app = app or create_app(settings)
    # One process here: WORKERS applies to serve() only, which owns its process.
    sock = bind_socket(host, port)
    bound_port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn_config(app, settings, host, bound_port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="ingest-api", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            sock.close()
            raise IngestStartupError("the ingest server did not start; see its log for why")
        time.sleep(0.01)
    url_host = f"[{host}]" if ":" in host else host
    return RunningServer(f"http://{url_host}:{bound_port}", host, bound_port, app, server, thread)
