"""Several worker processes serving one port, each with its own event loop and Kinesis batcher.

Every worker binds the port itself with SO_REUSEPORT, so the kernel spreads new connections
evenly over them. With one shared listening socket (uvicorn's --workers), whichever process wakes
first takes most connections, and keep-alive clients (a load balancer) then keep one worker
saturated while another idles.

The supervisor forwards SIGTERM/SIGINT and waits for the workers' graceful shutdown. If a worker
dies on its own, it stops the others and exits non-zero, so the orchestrator replaces the task
instead of running at reduced capacity unnoticed. Workers read their settings from the
environment; explicit settings are exported there before they start. With PROMETHEUS_MULTIPROC_DIR
set (a fresh directory unless one is given), /metrics on any worker reports the sum over all.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from pydantic import SecretStr

from tradestream.serving import bind_socket

from .app import create_app
from .keys import load_api_keys
from .listen import uvicorn_config
from .log import logger
from .metrics import MULTIPROC_ENV
from .settings import IngestSettings


class WorkerDiedError(RuntimeError):
    """A worker process exited while the service was meant to be running."""

    code = "IngestWorkerDied"


def run_workers(settings: IngestSettings, host: str, port: int) -> None:
    load_api_keys(settings)  # a bad key configuration fails here, once, not in every worker
    _export(settings)
    own_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        own_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="ingest-metrics-")
    # Held (bound, never listening) so that port 0 resolves to one port for every worker.
    reservation = bind_socket(host, port, reuse_port=True)
    bound = int(reservation.getsockname()[1])
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(host, bound), name=f"ingest-worker-{n}")
        for n in range(settings.workers)
    ]
    stop = threading.Event()
    previous = {sig: signal.signal(sig, _setter(stop)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.start()
        logger.info("ingest workers started", extra={"workers": len(workers), "port": bound})
        while not stop.wait(0.2):
            if any(not worker.is_alive() for worker in workers):
                break
        died = not stop.is_set()
        _stop(workers, settings.graceful_shutdown_seconds + settings.drain_timeout_seconds + 5)
        if died:
            raise WorkerDiedError("an ingest worker exited unexpectedly; see its log")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reservation.close()
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _worker(host: str, port: int) -> None:
    """One worker process: its own app (settings from the environment), socket and event loop."""
    settings = IngestSettings()
    sock = bind_socket(host, port, reuse_port=True)
    app = create_app(settings, freeze_gc=True)
    uvicorn.Server(uvicorn_config(app, settings, host, port)).run(sockets=[sock])


def _setter(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return handler


def _stop(workers: Sequence[BaseProcess], deadline: float) -> None:
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join(deadline)
        if worker.is_alive():
            worker.kill()
            worker.join()


def _export(settings: IngestSettings) -> None:
    for name, value in settings.model_dump().items():
        key = name.upper()
        if value is None:
            os.environ.pop(key, None)
        else:
            plain = value.get_secret_value() if isinstance(value, SecretStr) else value
            os.environ[key] = str(plain)
