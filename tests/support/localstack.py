"""Real LocalStack (the version compose pins) as a host process, for the localstack test tier.

LocalStack runs from a cached venv of its own (``tests.support.venvs``) on a free loopback port and
is stopped with SIGTERM, then SIGKILL after a deadline (it can hang on SIGTERM), its whole process
group included (kinesis-mock runs under node as its child). What it needs, found by running it:

- Python 3.13: 4.14.0 uses PEP 695 syntax although its metadata allows older versions;
- ``cbor2<6``, ``pyopenssl==25.3.0``, ``cryptography<47`` and ``service-identity``: newer
  releases of those break its start;
- ``GATEWAY_SERVER=hypercorn``: the default server ignores the host in GATEWAY_LISTEN and binds
  0.0.0.0;
- node and npm: Kinesis is kinesis-mock, which LocalStack installs from npm at first use (into
  ``var_libs``, which is kept in the cache directory, so once per machine);
- DynamoDB from moto through a provider override (``tests/localstack/dynamodb_moto``), because
  DynamoDB Local needs Java 21 and jars from outside the registries this project reaches;
- ``SQS_ENDPOINT_STRATEGY=path`` and ``LOCALSTACK_HOST``: queue URLs on the gateway's address,
  not on a hostname that needs DNS;
- ``OVERRIDE_IN_DOCKER=0``: on a host that is itself a container LocalStack believes it runs in
  its image and ignores FILESYSTEM_ROOT.

``TRADESTREAM_LOCALSTACK_ENDPOINT`` names a LocalStack that already runs (a container, a CI
service): it is used as is and nothing is started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.venvs import VenvUnavailableError, cache_dir, cached_venv

ENDPOINT_ENV = "TRADESTREAM_LOCALSTACK_ENDPOINT"
VERSION = "4.14.0"
PLUGIN = Path(__file__).resolve().parents[1] / "localstack" / "dynamodb_moto"
REQUIREMENTS = (
    f"localstack-core[runtime]=={VERSION}",
    "cbor2<6",
    "pyopenssl==25.3.0",
    "cryptography<47",
    "service-identity",
    str(PLUGIN),
)
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


class LocalStackUnavailableError(RuntimeError):
    """What this machine lacks to run LocalStack on the host: the tier skips with this reason."""


def compose_services(compose_file: Path = COMPOSE_FILE) -> list[str]:
    """The services compose's ``localstack`` service runs (its SERVICES), in its order."""
    compose = yaml.safe_load(compose_file.read_text())
    services: str = compose["services"]["localstack"]["environment"]["SERVICES"]
    return [name.strip() for name in services.split(",") if name.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def health(url: str, timeout_s: float = 2) -> dict[str, str] | None:
    """The services' states from ``/_localstack/health``; None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=timeout_s) as response:
            states: dict[str, str] = json.load(response).get("services", {})
            return states
    except (OSError, ValueError):
        return None


@dataclass
class LocalStack:
    url: str
    process: subprocess.Popen[bytes] | None = None  # None: one that was running already
    log_path: Path | None = None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, deadline_s: float = 10) -> None:
        if self.process is not None:
            stop_group(self.process, deadline_s)


def stop_group(process: subprocess.Popen[bytes], deadline_s: float) -> None:
    """SIGTERM the process group, SIGKILL it if the leader has not exited by the deadline."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(deadline_s)
    # Children (node) can outlive their leader: the group goes in any case.
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def requirements_missing() -> str | None:
    """Why LocalStack cannot run on this host, or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH; LocalStack installs kinesis-mock from npm"
    return None


def localstack_venv() -> Path:
    missing = requirements_missing()
    if missing:
        raise LocalStackUnavailableError(missing)
    try:
        return cached_venv(f"localstack-{VERSION}", "3.13", REQUIREMENTS)
    except VenvUnavailableError as exc:
        raise LocalStackUnavailableError(f"LocalStack {VERSION} needs Python 3.13: {exc}") from exc


def start(services: Iterable[str], workdir: Path, timeout_s: float = 120) -> LocalStack:
    """LocalStack on a free loopback port, healthy for ``services``; its log in ``workdir``."""
    venv = localstack_venv()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    wanted = list(services)
    log_path = workdir / "localstack.log"
    env = {
        **_clean_environment(),
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_SERVER": "hypercorn",
        "SERVICES": ",".join(wanted),
        "SQS_ENDPOINT_STRATEGY": "path",
        "PROVIDER_OVERRIDE_DYNAMODB": "moto",
        # Its directories under FILESYSTEM_ROOT: LocalStack takes a host that is itself a
        # container (/.dockerenv) for its own image, and would write to /var/lib/localstack and
        # share kinesis-mock's state file in /tmp/localstack with every other run.
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(_filesystem_root(workdir)),
        # Queue URLs on the gateway's own address (the default, localhost.localstack.cloud,
        # needs DNS).
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        # No usage data leaves a test run; no update checks either.
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "localstack.runtime.main"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop_group reaches node too
        )
    running = LocalStack(url, process, log_path)
    try:
        _wait_healthy(running, wanted, timeout_s)
    except BaseException:
        running.stop()
        raise
    return running


def _clean_environment() -> dict[str, str]:
    """This process's environment (proxies, CA bundles: npm needs them to fetch kinesis-mock)
    without what LocalStack would read as its own configuration or as credentials."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_LOCALSTACK_CONFIG_PREFIXES) and key not in _LOCALSTACK_CONFIG
    }


_LOCALSTACK_CONFIG_PREFIXES = ("AWS_", "LOCALSTACK_", "PROVIDER_OVERRIDE_", "GATEWAY_", "LS_")
_LOCALSTACK_CONFIG = {
    "DEBUG",
    "SERVICES",
    "PERSISTENCE",
    "DATA_DIR",
    "EAGER_SERVICE_LOADING",
    "STRICT_SERVICE_LOADING",
    "HOSTNAME_EXTERNAL",
    "LOCALSTACK_HOST",
    "DNS_ADDRESS",
    "KINESIS_MOCK_PROVIDER_ENGINE",
}


def _filesystem_root(workdir: Path) -> Path:
    """A root per run (LocalStack clears its tmp folder on start) whose ``var_libs``, where
    packages such as kinesis-mock are installed, is shared through the cache directory."""
    root = workdir / "localstack-fs"
    var_lib = root / "var" / "lib" / "localstack"
    var_lib.mkdir(parents=True, exist_ok=True)
    shared = cache_dir() / "localstack" / VERSION / "lib"
    shared.mkdir(parents=True, exist_ok=True)
    (var_lib / "lib").symlink_to(shared, target_is_directory=True)
    return root


def _wait_healthy(running: LocalStack, services: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    assert running.process is not None
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(
                f"LocalStack exited with {running.process.returncode}:\n{running.log_tail()}"
            )
        states = health(running.url)
        if states and all(states.get(s) in ("available", "running") for s in services):
            return
        time.sleep(0.5)
    raise RuntimeError(f"LocalStack not healthy after {timeout_s}s:\n{running.log_tail()}")


def running_endpoint() -> str | None:
    """The already-running LocalStack named by ``TRADESTREAM_LOCALSTACK_ENDPOINT``, if any."""
    return os.environ.get(ENDPOINT_ENV, "").rstrip("/") or None
