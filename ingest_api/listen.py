"""uvicorn's configuration, shared by every way of running the app."""

from __future__ import annotations

from typing import Any

import uvicorn

from .settings import IngestSettings

# Load balancers reuse idle connections for up to 60 s (ALB default); closing them sooner on the
# server side races with a request on the way and shows up as sporadic 502s.
KEEP_ALIVE_SECONDS = 65


def uvicorn_config(app: Any, settings: IngestSettings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        # Our middleware writes structured access logs; uvicorn's would be unstructured twins.
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_seconds),
    )
