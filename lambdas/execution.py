"""What both functions share about Lambda's execution model.

An execution environment serves many invocations, so what is costly to build (settings read from
the environment, clients) is built by the first and reused by the rest: ``PerEnvironment``.
Its ``reset()`` forgets it as a new environment would, for tests and for the local runtime's
"cold start". An invocation is cut off at the function's timeout, so retries must stop early
enough for the function still to answer: ``invocation_deadline``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


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
