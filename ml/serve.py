"""Local model server: the SageMaker container contract (``GET /ping``, ``POST /invocations``,
port 8080) and the SageMaker runtime API path (``POST /endpoints/{name}/invocations``), so an
unmodified boto3 ``sagemaker-runtime`` client works against it.

It serves a packaged model through the package's own ``code/inference.py`` (model_fn, input_fn,
predict_fn, output_fn), exactly what the SageMaker scikit-learn container runs. Without a model
directory it serves the default model: trained reproducibly on first use (a few seconds) and
cached under ``$XDG_CACHE_HOME/tradestream`` (``~/.cache/tradestream``).

Errors answer as SageMaker does: on the container paths the model's 400 as is; on the runtime
path a ``ModelError`` (HTTP 424, ``x-amzn-ErrorType``), which boto3 raises as
``client.exceptions.ModelError``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import uvicorn
from fastapi import FastAPI, Request, Response

from ml.package import extract, package
from ml.train import train

DEFAULT_SEED = 7


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tradestream"


def default_model_dir() -> Path:
    """The default model, trained and packaged once, then reused from the cache."""
    served = cache_dir() / f"model-seed{DEFAULT_SEED}"
    if not (served / "code" / "inference.py").exists():
        with tempfile.TemporaryDirectory() as scratch:
            trained = train(Path(scratch) / "model", seed=DEFAULT_SEED)
            artifact = package(trained.model_dir, Path(scratch) / "model.tar.gz")
            staging = served.with_name(served.name + f".tmp{os.getpid()}")
            extract(artifact, staging)
            try:  # atomic: a process racing us either wins or finds the finished model
                staging.replace(served)
            except OSError:
                if not (served / "code" / "inference.py").exists():
                    raise
                shutil.rmtree(staging, ignore_errors=True)
    return served


def load_inference(model_dir: Path) -> ModuleType:
    """Import the package's inference code with its own features module, as the container does."""
    code = model_dir / "code"
    features_spec = importlib.util.spec_from_file_location("features", code / "features.py")
    inference_spec = importlib.util.spec_from_file_location(
        f"tradestream_inference_{abs(hash(code))}", code / "inference.py"
    )
    if not (features_spec and features_spec.loader and inference_spec and inference_spec.loader):
        raise RuntimeError(f"no inference code under {code}")
    features = importlib.util.module_from_spec(features_spec)
    features_spec.loader.exec_module(features)
    previous = sys.modules.get("features")
    sys.modules["features"] = features  # what `from features import ...` finds in code/
    try:
        inference = importlib.util.module_from_spec(inference_spec)
        inference_spec.loader.exec_module(inference)
    finally:
        if previous is not None:
            sys.modules["features"] = previous
        else:
            sys.modules.pop("features", None)
    return inference


def create_app(model_dir: Path | None = None) -> FastAPI:
    root = model_dir or default_model_dir()
    if root.is_file():  # a model.tar.gz
        root = extract(root, Path(tempfile.mkdtemp(prefix="tradestream-model-")))
    inference = load_inference(root)
    model = inference.model_fn(str(root))
    app = FastAPI(title="tradestream model server", openapi_url=None, docs_url=None)
    app.state.model_version = model["metadata"]["model_version"]

    def invoke(body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str]:
        try:
            trades = inference.input_fn(body, content_type or "application/json")
        except inference.InputError as exc:
            return 400, json.dumps({"message": str(exc)}).encode(), "application/json"
        output, mime = inference.output_fn(inference.predict_fn(trades, model), accept)
        return 200, output.encode(), mime

    @app.get("/ping")
    def ping() -> Response:
        return Response(status_code=200)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        status, body, mime = invoke(
            await request.body(),
            request.headers.get("content-type", ""),
            request.headers.get("accept", ""),
        )
        return Response(body, status_code=status, media_type=mime)

    @app.post("/endpoints/{name}/invocations")
    async def runtime_invocations(name: str, request: Request) -> Response:
        status, body, mime = invoke(
            await request.body(),
            request.headers.get("content-type", ""),
            request.headers.get("accept", ""),
        )
        if status != 200:
            error = {
                "message": f"Received client error ({status}) from model: {body.decode()}",
                "OriginalStatusCode": status,
                "OriginalMessage": body.decode(),
            }
            return Response(
                json.dumps(error),
                status_code=424,
                media_type="application/json",
                headers={"x-amzn-ErrorType": "ModelError"},
            )
        return Response(
            body,
            media_type=mime,
            headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"},
        )

    return app


def serve(model_dir: Path | None = None, host: str = "127.0.0.1", port: int = 8080) -> None:
    uvicorn.run(create_app(model_dir), host=host, port=port, log_level="warning")


@dataclass
class RunningServer:
    url: str
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def start_in_thread(
    model_dir: Path | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Serve in a daemon thread; returns once the server accepts requests."""
    app = create_app(model_dir)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = int(sock.getsockname()[1])
    config = uvicorn.Config(app, host=host, port=bound, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="model-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the model server did not start")
        time.sleep(0.01)
    return RunningServer(f"http://{host}:{bound}", server, thread)
