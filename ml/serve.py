"""Local model server: the SageMaker container contract and the SageMaker runtime API.

- Container contract (what SageMaker calls inside an endpoint): ``GET /ping``,
  ``POST /invocations``, port 8080. Bad input answers the model's own status (400, 406, 415)
  with ``{"error": ..., "message": ...}``.
- Runtime API (what boto3 ``sagemaker-runtime`` calls): ``POST /endpoints/{name}/invocations``,
  so an unmodified client works with ``endpoint_url`` set to this server and any credentials.
  Errors have the runtime's shapes, which boto3 raises as its modeled exceptions: a model
  error is ``ModelError`` (HTTP 424, with ``OriginalStatusCode`` and ``OriginalMessage``); a body
  over 6 MiB or a malformed endpoint name is ``ValidationError``. Every endpoint name is served
  by the one model loaded.

Both paths run the package's own ``code/inference.py`` (model_fn, input_fn, predict_fn,
output_fn), what the SageMaker scikit-learn container runs, one vectorised predict per request,
in a worker thread so ``/ping`` stays responsive. Not emulated: the 60 s invocation timeout,
TargetModel / TargetVariant routing, CustomAttributes, and signature (SigV4) checks.

``GET /metrics``: Prometheus metrics of this app, in a registry of its own (``ServerMetrics``),
counting both invocation paths alike: ``model_invocations_total{status}`` (the status the model
answered: 200, or its 400 / 406 / 413 / 415 / 500, which the runtime path wraps in a 424
ModelError), ``model_rows_predicted_total`` (trades in successful invocations),
``model_invocation_duration_seconds`` (body read to answer) and ``model_loaded{model_version}``.
A malformed endpoint name never reaches the model and is not counted.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool

from ml.default_model import cache_dir, default_model_dir, mark_used, prune_cache
from ml.package import PackageError, extract, load_inference, package, read_metadata
from tradestream.limits import SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES
from tradestream.logs import get_logger
from tradestream.serving import ThreadedServer

ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
VARIANT = "AllTraffic"
START_TIMEOUT_S = 15.0
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

log = get_logger("model-server")


@dataclass(frozen=True)
class LoadedModel:
    model_dir: Path
    inference: ModuleType
    model: Any  # what the package's model_fn returned
    model_version: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    rows: int = 0  # trades predicted


class ServerMetrics:
    """One app's Prometheus metrics (tests serve several models in one process)."""

    def __init__(self, model_version: str) -> None:
        self.registry = CollectorRegistry()
        self.invocations = Counter(
            "model_invocations",
            "Invocations answered, by the HTTP status the model answered (both paths).",
            ["status"],
            registry=self.registry,
        )
        self.rows = Counter(
            "model_rows_predicted",
            "Trades predicted, one row each, in successful invocations.",
            registry=self.registry,
        )
        self.duration = Histogram(
            "model_invocation_duration_seconds",
            "Time from the request to its answer, body read and inference included.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.loaded = Gauge(
            "model_loaded",
            "1 while a model is loaded and served, labelled with its version.",
            ["model_version"],
            registry=self.registry,
        )
        self.loaded.labels(model_version).set(1)

    def answered(self, answer: Answer, seconds: float) -> None:
        self.invocations.labels(str(answer.status)).inc()
        self.rows.inc(answer.rows)
        self.duration.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def load_model(model_dir: Path | None = None) -> LoadedModel:
    """The model a server serves: ``model_dir`` (a model.tar.gz, an extracted one, or a training
    output directory, which is packaged first), or the default model when None."""
    root = default_model_dir() if model_dir is None else model_dir
    if root.is_dir() and not (root / "code" / "inference.py").exists():
        read_metadata(root)  # a clear error for a directory that is not a model
        with tempfile.TemporaryDirectory() as scratch:  # serve what `model package` would ship
            root = _extracted(package(root, Path(scratch) / "model.tar.gz"))
    elif root.is_file():
        root = _extracted(root)
    inference = load_inference(root)
    model = inference.model_fn(str(root))
    return LoadedModel(root, inference, model, str(model["model_version"]))


def create_app(model_dir: Path | None = None, *, loaded: LoadedModel | None = None) -> FastAPI:
    served = loaded or load_model(model_dir)
    app = FastAPI(title="tradestream model server", openapi_url=None, docs_url=None, redoc_url=None)
    metrics = ServerMetrics(served.model_version)
    app.state.model = served
    app.state.metrics = metrics

    @app.get("/ping")
    def ping() -> Response:
        return Response(status_code=200)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        answer = await _answer(served, request, metrics)
        return _response(answer)

    @app.post("/endpoints/{name}/invocations")
    async def runtime_invocations(name: str, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        if not ENDPOINT_NAME.match(name):
            return _runtime_error(
                400, "ValidationError", f"Endpoint name {name!r} is not valid.", request_id
            )
        answer = await _answer(served, request, metrics)
        if answer.status == 413:
            message = f"Request {request_id} has oversize body."
            return _runtime_error(413, "ValidationError", message, request_id)
        if answer.status != 200:
            return _model_error(answer, request_id)
        headers = {"x-Amzn-Invoked-Production-Variant": VARIANT, "x-amzn-RequestId": request_id}
        return _response(answer, headers)

    return app


def serve(model_dir: Path | None = None, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGINT / SIGTERM (uvicorn finishes in-flight requests, then exits)."""
    loaded = load_model(model_dir)
    log.info(
        "model server starting",
        extra={"url": f"http://{host}:{port}", "model_version": loaded.model_version},
    )
    uvicorn.run(create_app(loaded=loaded), host=host, port=port, log_level="warning")


@dataclass
class RunningServer(ThreadedServer):
    model_version: str = ""


def start_in_thread(
    model_dir: Path | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Serve in a daemon thread (port 0: a free port); returns once requests are accepted."""
    loaded = load_model(model_dir)
    config = uvicorn.Config(
        create_app(loaded=loaded),
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # see tradestream.serving
        lifespan="off",
    )
    return RunningServer.start(
        config,
        name="model-server",
        startup_timeout=START_TIMEOUT_S,
        model_version=loaded.model_version,
    )


async def _answer(served: LoadedModel, request: Request, metrics: ServerMetrics) -> Answer:
    started = time.perf_counter()
    answer = await _model_answer(served, request)
    metrics.answered(answer, time.perf_counter() - started)
    return answer


async def _model_answer(served: LoadedModel, request: Request) -> Answer:
    limit = SAGEMAKER_INVOKE_MAX_PAYLOAD_BYTES
    too_large = _error_answer(413, "PayloadTooLarge", f"the body exceeds {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # refused before reading it
        return too_large
    body = await request.body()
    if len(body) > limit:
        return too_large
    content_type = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    # CPU-bound: off the event loop, so pings and other connections keep being served.
    return await run_in_threadpool(_invoke, served, body, content_type, accept)


def _invoke(served: LoadedModel, body: bytes, content_type: str, accept: str) -> Answer:
    inference = served.inference
    try:
        trades = inference.input_fn(body, content_type)
        prediction = inference.predict_fn(trades, served.model)
        output, mime = inference.output_fn(prediction, accept)
    except inference.InferenceError as exc:
        return _error_answer(exc.status_code, type(exc).__name__, str(exc))
    except Exception as exc:
        log.exception("inference failed")
        return _error_answer(500, type(exc).__name__, f"inference failed: {exc}")
    return Answer(200, output.encode("utf-8"), mime, len(trades) if isinstance(trades, list) else 0)


def _response(answer: Answer, headers: dict[str, str] | None = None) -> Response:
    # The content type exactly as output_fn chose it (Starlette would add a charset to text/*).
    headers = {**(headers or {}), "content-type": answer.content_type}
    return Response(answer.body, status_code=answer.status, headers=headers)


def _error_answer(status: int, error: str, message: str) -> Answer:
    body = json.dumps({"error": error, "message": message}).encode()
    return Answer(status, body, "application/json")


def _model_error(answer: Answer, request_id: str) -> Response:
    """What the runtime answers when the container answers non-2xx."""
    kind = "client" if answer.status < 500 else "server"
    original = answer.body.decode("utf-8", "replace")
    message = (
        f'Received {kind} error ({answer.status}) from primary with message "{original}". '
        "See the model server's log for more information."
    )
    return _runtime_error(
        424,
        "ModelError",
        message,
        request_id,
        OriginalStatusCode=answer.status,
        OriginalMessage=original,
    )


def _runtime_error(
    status: int, code: str, message: str, request_id: str, **members: Any
) -> Response:
    body = json.dumps({"message": message, **members})
    headers = {"x-amzn-ErrorType": code, "x-amzn-RequestId": request_id}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _extracted(artifact: Path) -> Path:
    """A model.tar.gz unpacked once into the cache, keyed by its bytes."""
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"artifact-{digest}"
    if (target / "code" / "inference.py").exists():
        mark_used(target)
    else:
        staging = extract(artifact, cache_dir() / f".artifact-{digest}-{uuid.uuid4().hex[:8]}")
        try:
            staging.rename(target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
            if not (target / "code" / "inference.py").exists():
                raise
        prune_cache(keep=target)
    if not (target / "metadata.json").exists():
        raise PackageError(f"{artifact} is not a model package (no metadata.json)")
    return target
