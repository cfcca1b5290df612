"""Serving a Prometheus registry at ``/metrics`` from a thread, one way, for the long-running
processes that have no web server of their own (the producer, the local runtime).

prometheus_client's own WSGI server, in a daemon thread: port 0 gives a free port, known on
return (``url``); a port in use raises ``OSError`` where the caller can see it; ``stop`` ends the
server and its thread. Importing this needs prometheus-client, which is in the extra of every
component that serves metrics (the Lambdas never import it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Self
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

STOP_TIMEOUT_S = 5.0


@dataclass
class MetricsServer:
    host: str
    port: int
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        """Where to scrape, e.g. ``http://127.0.0.1:9100/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop serving (a scrape in progress finishes) and close the socket. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` on ``host:port`` (port 0: a free one) until ``stop``."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    thread.name = f"metrics-{server.server_port}"
    return MetricsServer(host, int(server.server_port), server, thread)
