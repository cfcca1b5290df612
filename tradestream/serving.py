"""Running a uvicorn app in a background thread of a process that does other work (the model
server beside the local runtime, the ingest API beside ``tradestream up``, tests), one way.

- The socket is bound in the caller's thread before the server starts, so port 0 gives a free
  port that is known on return, and a port in use fails where the caller can see it.
- ``start`` returns once the server accepts connections, or raises ``ServerStartupError`` after
  stopping what it started.
- Signals stay with the main thread (uvicorn only installs handlers there): the caller decides
  when to ``stop``, which lets requests finish for ``timeout`` seconds, then closes connections.
- The uvicorn config must be built with ``log_config=None``: uvicorn's default applies
  ``logging.config.dictConfig`` to the whole process, re-enabling every logger the host process
  disabled, and a server in a thread must not reconfigure its host.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn

# After the graceful stop's timeout, connections are closed: this long for the thread to end.
FORCED_STOP_SECONDS = 5.0


class ServerStartupError(RuntimeError):
    """The server did not come up; uvicorn logged why."""

    code = "ServerStartupFailed"


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


@dataclass
class ThreadedServer:
    """A uvicorn server running in a daemon thread. Subclasses add what their callers need to
    know about the app (``start`` passes extra keyword arguments on as fields)."""

    host: str
    port: int
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @classmethod
    def start(
        cls,
        config: uvicorn.Config,
        *,
        name: str,
        startup_timeout: float = 15.0,
        **fields: Any,
    ) -> Self:
        """Serve ``config`` (its host and port; port 0: a free one) in a thread named ``name``."""
        if config.log_config is not None:
            raise ValueError("a server in a thread needs uvicorn.Config(log_config=None)")
        sock = bind_socket(config.host, config.port)
        # uvicorn serves the socket given; the port is only for its own log line.
        config.port = int(sock.getsockname()[1])
        server = uvicorn.Server(config)
        thread = threading.Thread(target=_run, args=(server, sock), name=name, daemon=True)
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(FORCED_STOP_SECONDS)
                sock.close()
                raise ServerStartupError(f"server {name!r} did not start; see its log for why")
            time.sleep(0.01)
        return cls(config.host, config.port, server, thread, **fields)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._server.started

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: requests get ``timeout`` seconds to finish, then connections close."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(FORCED_STOP_SECONDS)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    # uvicorn exits when the app's startup fails, after logging why; in a thread that exit would
    # only add a traceback. start() sees the thread end and raises ServerStartupError.
    with contextlib.suppress(SystemExit):
        server.run(sockets=[sock])
