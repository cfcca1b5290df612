"""What both functions share about Lambda's execution model.

An execution environment serves many invocations, so what is costly to build (settings read from
the environment, clients) is built by the first and reused by the rest: ``PerEnvironment``.
Its ``reset()`` forgets it as a new environment would, for tests and for the local runtime's
"cold start". ``lambda_handler`` is the entry point Lambda calls, over that reused state; it
publishes the invocation's figures as one EMF blob (``lambdas.metrics``) once the work is done.
An invocation is cut off at the function's timeout, so retries must stop early enough for the
function still to answer: ``invocation_deadline``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from aws_lambda_powertools import Logger

from lambdas.metrics import Figures, publish

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class BatchProcessor(Protocol[R_co]):
    """A function's work for one event (``Hotstore``, ``Enricher``)."""

    def process(
        self, event: Mapping[str, Any], context: Any = None, figures: Figures | None = None
    ) -> R_co: ...


class PerEnvironment(Generic[T]):
    """One ``T`` per execution environment, built by ``build`` on first use."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._instance: T | None = None
        # Lambda invokes one at a time, but the local runtime invokes from one thread per shard:
        # without the lock, concurrent first invocations would each build their own clients.
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._instance is None:
                self._instance = self._build()
            return self._instance

    def reset(self) -> None:
        with self._lock:
            self._instance = None


def lambda_handler(
    logger: Logger, processor: Callable[[], BatchProcessor[R]], *, service: str
) -> Callable[[dict[str, Any], Any], R]:
    """The function Lambda calls: ``processor()`` handles the event, every log line of the
    invocation carries its request id (and none of the previous invocation's keys), and the
    invocation's figures are published once, as ``service``'s metrics. An invocation that
    raises publishes none: Lambda's own Errors metric counts it."""

    def handle(event: dict[str, Any], context: Any) -> R:
        figures = Figures()
        response = processor().process(event, context, figures)
        publish(figures, service=service, context=context)
        return response

    return logger.inject_lambda_context(handle, clear_state=True)


def invocation_deadline(
    context: Any, reserve_seconds: float, monotonic: Callable[[], float]
) -> float | None:
    """The ``monotonic`` instant ``reserve_seconds`` before the invocation times out.

    None without a Lambda context (a direct call in a test or a benchmark): no deadline then.
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return monotonic() + float(remaining()) / 1000 - reserve_seconds
