"""Running a uvicorn app in a thread (tradestream.serving), over real HTTP on loopback: it is
serving when start returns, on the port it reports, and stops within its deadline."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest
import uvicorn

from tradestream.serving import ServerStartupError, ThreadedServer, bind_socket


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: 200 "hello" to any request."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})


async def doomed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app whose startup fails, as one whose resources are missing does."""
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no resources"})


def config(port: int = 0, app: Any = hello, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **options)


def test_serves_on_the_free_port_it_reports_and_stops_within_the_deadline() -> None:
    # GIVEN an app started in a thread on port 0
    with ThreadedServer.start(config(), name="hello") as server:
        # WHEN it is asked THEN it answers at once, on the port it reports
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.running
        assert httpx.get(server.url).text == "hello"
        # AND stop returns well within its deadline and the port is closed
        began = time.monotonic()
        server.stop(timeout=5)
        assert time.monotonic() - began < 5
        assert not server.running
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url)


def test_a_port_in_use_fails_in_the_callers_thread() -> None:
    # GIVEN a port some other socket holds
    holder = bind_socket("127.0.0.1", 0)
    holder.listen()
    port = holder.getsockname()[1]
    try:
        # WHEN a server is started on it THEN the bind error reaches the caller
        with pytest.raises(OSError):
            ThreadedServer.start(config(port), name="clash")
    finally:
        holder.close()


def test_a_startup_that_fails_raises_in_the_callers_thread() -> None:
    # GIVEN an app whose lifespan startup fails
    # WHEN it is started THEN the start raises the startup error, naming the server, at once
    began = time.monotonic()
    with pytest.raises(ServerStartupError, match="'doomed'"):
        ThreadedServer.start(config(app=doomed, lifespan="on"), name="doomed", startup_timeout=10)
    assert time.monotonic() - began < 5


def test_a_config_that_would_reconfigure_the_host_process_logging_is_refused() -> None:
    # GIVEN uvicorn's default log config (dictConfig on the whole process)
    default = uvicorn.Config(hello, host="127.0.0.1", port=0)
    # WHEN started in a thread THEN refused before anything is bound
    with pytest.raises(ValueError, match="log_config=None"):
        ThreadedServer.start(default, name="noisy")


def test_bind_socket_gives_a_bound_socket_not_yet_listening() -> None:
    # GIVEN a socket bound to port 0 WHEN a client connects before listen() THEN it is refused
    sock = bind_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        sock.close()
