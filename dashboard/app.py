"""The dashboard's HTTP side: the page, its assets, and the snapshots as server-sent events.

Server-sent events rather than a WebSocket: the page only listens, EventSource reconnects by
itself (resuming after the last event id), and it passes any HTTP proxy unchanged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles

from dashboard.feed import Feed, Probes
from dashboard.settings import DashboardSettings
from tradestream.serving import ThreadedServer

STATIC = Path(__file__).parent / "static"
# How long one wait for the next snapshot lasts before the stream checks the client is still
# there; FastAPI's own keep-alive comments cover the silence in between.
WAIT_S = 5.0


def create_app(feed: Feed) -> FastAPI:
    app = FastAPI(title="tradestream dashboard", docs_url=None, redoc_url=None)
    app.state.feed = feed

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/snapshot")
    async def snapshot() -> JSONResponse:
        """The pipeline now: what each event of /api/events carries."""
        return JSONResponse(await asyncio.to_thread(feed.current))

    @app.get("/api/events", response_class=EventSourceResponse)
    async def events(request: Request) -> AsyncIterator[ServerSentEvent]:
        """A snapshot per collection (about one a second) while the page stays connected."""
        with feed.subscription():
            seq = 0
            while not await request.is_disconnected():
                newer, data = await asyncio.to_thread(feed.wait_next, seq, WAIT_S)
                if newer > seq and data:
                    seq = newer
                    yield ServerSentEvent(raw_data=_dumps(data), event="snapshot", id=str(seq))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "subscribers": feed.subscribers}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _dumps(data: dict[str, Any]) -> str:
    # NaN is not JSON: the browser's JSON.parse would reject the whole event.
    return json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)


@dataclass
class DashboardServer(ThreadedServer):
    feed: Feed | None = None

    def stop(self, timeout: float = 2.0) -> None:
        # Open event streams never end on their own: a short grace, then they are closed.
        super().stop(timeout)
        if self.feed is not None:
            self.feed.close()


def start_in_thread(
    settings: DashboardSettings | None = None,
    probes: Probes | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
) -> DashboardServer:
    """Serve the dashboard in a daemon thread; returns once it accepts connections."""
    settings = settings or DashboardSettings()
    feed = Feed(settings, probes)
    config = uvicorn.Config(
        create_app(feed),
        host=host if host is not None else settings.dashboard_host,
        port=port if port is not None else settings.dashboard_port,
        log_level="warning",
        log_config=None,  # see tradestream.serving
        lifespan="off",
    )
    return DashboardServer.start(config, name="dashboard", feed=feed)


def serve(settings: DashboardSettings | None = None, probes: Probes | None = None) -> None:
    """Serve in the foreground (``tradestream dashboard``) until interrupted."""
    settings = settings or DashboardSettings()
    uvicorn.run(
        create_app(Feed(settings, probes)),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        log_level="info",
    )
