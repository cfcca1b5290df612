"""FastAPI dependencies, as ``Annotated`` aliases so tests can swap any of them through
``app.dependency_overrides`` (e.g. ``app.dependency_overrides[get_sink] = lambda: fake``).

All are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, which would cost a
thread hop per request for work that takes microseconds. The trades route uses few and flat ones
(each dependency costs FastAPI ~10 µs to solve, per request): they read the app state from the
request instead of depending on a ``State`` dependency.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request

from .batcher import KinesisBatcher, PutOutcome
from .errors import RateLimitedError, UnauthorizedError, UnavailableError
from .keys import ApiKeys
from .log import logger
from .metrics import Metrics
from .parse import TradeParser
from .ratelimit import RateLimiter
from .readiness import ReadinessProbe
from .reads import TradeReader
from .settings import IngestSettings

API_KEY_HEADER = "X-API-Key"

T = TypeVar("T")


class TradeSink(Protocol):
    """Where validated records go; the Kinesis batcher in production."""

    @property
    def closing(self) -> bool: ...

    async def put(self, records: Sequence[tuple[str, str, bytes]]) -> PutOutcome: ...


@dataclass
class IngestState:
    """Everything the app holds; the Kinesis parts exist only while the lifespan runs."""

    settings: IngestSettings
    keys: ApiKeys
    limiter: RateLimiter
    parser: TradeParser
    metrics: Metrics
    kinesis: Any | None = None
    batcher: KinesisBatcher | None = None
    readiness: ReadinessProbe | None = None
    reader: TradeReader | None = None


def ingest_state(request: Request) -> IngestState:
    state: IngestState = request.app.state.ingest
    return state


async def get_state(request: Request) -> IngestState:
    return ingest_state(request)


State = Annotated[IngestState, Depends(get_state)]


async def get_settings(state: State) -> IngestSettings:
    return state.settings


Settings = Annotated[IngestSettings, Depends(get_settings)]


def _started(value: T | None) -> T:
    """A part that exists only while the lifespan runs; 503 NotReady before it starts."""
    if value is None:
        raise UnavailableError(
            "the service is not started",
            accepted=[],
            not_accepted=[],
            retry_after=1,
            code="NotReady",
        )
    return value


def _lifespan_part(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency giving the part of the state the lifespan starts (503 until it has)."""

    async def dependency(request: Request) -> Any:
        return _started(getattr(ingest_state(request), name))

    dependency.__name__ = f"get_{name}"
    return dependency


# Each is a module-level name, so tests override them: app.dependency_overrides[get_sink] = ...
get_sink = _lifespan_part("batcher")
get_readiness = _lifespan_part("readiness")
get_reader = _lifespan_part("reader")

Sink = Annotated[TradeSink, Depends(get_sink)]
Readiness = Annotated[ReadinessProbe, Depends(get_readiness)]
Reader = Annotated[TradeReader, Depends(get_reader)]


async def authorize(request: Request) -> str:
    """The name of the caller's key (never the key itself): 401 without a valid key, 429 when
    the key is over its rate. Keys are checked first so unknown callers cannot drain a bucket.

    The header is read here rather than through FastAPI's APIKeyHeader security dependency,
    which would add a dependency to solve on every request; openapi.py declares the scheme."""
    state = ingest_state(request)
    name = state.keys.identify(request.headers.get(API_KEY_HEADER))
    if name is None:
        raise UnauthorizedError()
    request.state.caller = name
    logger.thread_safe_append_keys(caller=name)
    wait = state.limiter.acquire(name)
    if wait > 0:
        raise RateLimitedError(retry_after=max(1, math.ceil(wait)))
    return name


Caller = Annotated[str, Depends(authorize)]
