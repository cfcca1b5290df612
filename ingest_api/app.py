"""The FastAPI application: wiring of settings, keys, the Kinesis client and the batcher."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from botocore.config import Config
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from tradestream import aws
from tradestream.aggregation import ShardRouter

from .batcher import BatchPolicy, KinesisBatcher
from .deps import IngestState
from .errors import IngestError, InvalidQueryError
from .keys import ApiKeys, load_api_keys
from .log import logger
from .metrics import Metrics
from .middleware import RequestContextMiddleware
from .openapi import install_openapi
from .parse import TradeParser
from .put_records import put_records_over_http
from .ratelimit import RateLimiter
from .readiness import ReadinessProbe
from .reads import TradeReader
from .routes import router
from .settings import IngestSettings

NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}

KinesisClientFactory = Callable[[IngestSettings], AbstractAsyncContextManager[Any]]
DynamoDBClientFactory = Callable[[IngestSettings], AbstractAsyncContextManager[Any]]

DESCRIPTION = """Puts client trades into the Kinesis stream, durably: 202 only once Kinesis has
accepted every trade of the request. Reads them back from the hot store (DynamoDB), in time
order, a page at a time. Authenticate with the `X-API-Key` header."""


def kinesis_client(settings: IngestSettings) -> AbstractAsyncContextManager[Any]:
    """The production client, against whatever endpoint the environment names.

    The SDK's own retries are off: the batcher resends only the entries that failed, within its
    budget, and a second retry layer would multiply attempts and hide the budget. Parameter
    validation is off because the batcher builds every request itself; it costs ~3 µs a record.
    """
    return aws.aio_client(
        "kinesis",
        config=aws.NO_SDK_RETRIES.merge(
            Config(
                parameter_validation=False,
                read_timeout=settings.kinesis_call_timeout_seconds,
                connect_timeout=min(5.0, settings.kinesis_call_timeout_seconds),
                max_pool_connections=settings.put_concurrency + 2,
            )
        ),
    )


def dynamodb_client(settings: IngestSettings) -> AbstractAsyncContextManager[Any]:
    """The hot store's reader client. Reads are idempotent, so the SDK's standard retries
    (aws.client_config) stay on; the timeouts keep a slow table from holding a request long."""
    return aws.aio_client(
        "dynamodb",
        config=Config(
            read_timeout=settings.dynamodb_call_timeout_seconds,
            connect_timeout=min(5.0, settings.dynamodb_call_timeout_seconds),
        ),
    )


@asynccontextmanager
async def _put_records_sender(client: Any, settings: IngestSettings) -> AsyncIterator[Any]:
    if settings.put_records_client == "sdk":
        yield client
        return
    async with put_records_over_http(
        client,
        connections=settings.put_concurrency + 2,
        connect_timeout=min(5.0, settings.kinesis_call_timeout_seconds),
    ) as sender:
        yield sender


def create_app(
    settings: IngestSettings | None = None,
    *,
    api_keys: ApiKeys | None = None,
    kinesis_client_factory: KinesisClientFactory = kinesis_client,
    dynamodb_client_factory: DynamoDBClientFactory = dynamodb_client,
    freeze_gc: bool = False,
) -> FastAPI:
    """Build the app; keys are loaded now so a bad key configuration fails before serving.

    ``freeze_gc`` is for a process that serves nothing else (``serve``): once started, the
    objects loaded so far (botocore's service models, the app) are moved out of the collector's
    reach. A full collection otherwise walks all of them and stalls the event loop for tens of
    milliseconds, which shows up as the latency tail.
    """
    settings = settings or IngestSettings()
    state = IngestState(
        settings=settings,
        keys=api_keys or load_api_keys(settings),
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        parser=TradeParser(settings.max_trades_per_request),
        metrics=Metrics(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            kinesis_client_factory(settings) as client,
            _put_records_sender(client, settings) as sender,
            dynamodb_client_factory(settings) as dynamodb,
        ):
            batcher = KinesisBatcher(
                sender,
                settings.stream_name,
                BatchPolicy.from_settings(settings),
                metrics=state.metrics,
                # ListShards through the SDK client: it is called once, and again on resharding.
                shards=ShardRouter(client, settings.stream_name) if settings.aggregation else None,
            )
            batcher.start()
            state.kinesis, state.batcher = client, batcher
            state.readiness = ReadinessProbe(
                client,
                settings.stream_name,
                cache_seconds=settings.readiness_cache_seconds,
                timeout=settings.kinesis_call_timeout_seconds,
            )
            # One client for the app's life: a client per request would rebuild its connection
            # pool (and TLS sessions) every time.
            state.reader = TradeReader(
                dynamodb, settings.table_name, retry_after=settings.retry_after_seconds
            )
            if freeze_gc:
                gc.collect()
                gc.freeze()
            logger.info(
                "ingest started", extra={"stream": settings.stream_name, "keys": len(state.keys)}
            )
            try:
                yield
            finally:
                await batcher.close(settings.drain_timeout_seconds)
                state.kinesis = state.batcher = state.readiness = state.reader = None
                state.metrics.process_exited()
                logger.info("ingest stopped")

    app = FastAPI(
        title="tradestream ingest",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Metrics are Prometheus (/metrics) and logs are JSON lines; FastAPI's OpenTelemetry
        # hooks would only cost a provider lookup per request with nothing to export to.
        telemetry=NO_TELEMETRY,
    )
    app.state.ingest = state
    app.include_router(router)
    ingest_errors = _ingest_error_handler(state.metrics)
    app.add_exception_handler(IngestError, ingest_errors)
    app.add_exception_handler(RequestValidationError, _invalid_query_handler(ingest_errors))
    app.add_exception_handler(HTTPException, _allow_every_method_of_the_path(app.router.routes))
    app.add_middleware(
        RequestContextMiddleware, metrics=state.metrics, access_log=settings.access_log
    )
    install_openapi(app, settings.max_trades_per_request)
    return app


def _ingest_error_handler(metrics: Metrics) -> Callable[[Request, Exception], Response]:
    def handle(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, IngestError)
        metrics.trades_rejected.labels(exc.code).inc()
        return Response(
            exc.body().model_dump_json(),
            status_code=exc.status,
            headers=exc.headers,
            media_type="application/json",
        )

    return handle


def _invalid_query_handler(
    ingest_errors: Callable[[Request, Exception], Response],
) -> Callable[[Request, Exception], Response]:
    """FastAPI's own 422 (query parameters of the reads) in the API's Problem shape."""

    def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:])}: {error['msg']}"
            for error in exc.errors()
        )
        return ingest_errors(request, InvalidQueryError(problems))

    return handle


def _allow_every_method_of_the_path(
    routes: list[BaseRoute],
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A 405's ``Allow`` lists every method the path serves. Starlette names only the first
    route's, and /v1/trades is two routes (POST writes, GET reads)."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            methods = {
                method
                for route in routes
                if route.matches(request.scope)[0] is Match.PARTIAL
                for method in getattr(route, "methods", None) or ()
            }
            headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
            exc = HTTPException(405, exc.detail, headers)
        return await http_exception_handler(request, exc)

    return handle
