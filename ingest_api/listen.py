"""The listening socket and uvicorn's configuration, shared by every way of running the app."""

from __future__ import annotations

import socket
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


def bind_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
