"""docker-compose.yml's own services run as host processes, without Docker.

Read from the file, as compose reads it: each service's ``command``, ``environment`` (YAML anchors
and merge keys through ``yaml.safe_load``; ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:+alt}`` and ``$$`` interpolated from a given mapping, not the caller's shell, so a run is
the same on every machine), ``depends_on`` with its conditions (``service_started``,
``service_healthy``, ``service_completed_successfully``), its health check (compose's
``healthcheck``, else the ``HEALTHCHECK`` of the Dockerfile it is built from), its ports and its
``stop_grace_period``.

What a container would give and a host process cannot, and how it is stood in for:

- its own network namespace: every ``<service>:<container port>`` (in URLs, in ``--port``, in
  ``ports``) gets a free loopback port, ``--host 0.0.0.0`` becomes 127.0.0.1, and in a service's
  own health check ``127.0.0.1:<container port>`` / ``localhost:<container port>`` its host port;
- its own ``/tmp``: paths under /tmp in a service's command and health check move to a directory
  of that service;
- its image: ``tradestream`` and ``python`` are this interpreter's (the project's venv); the
  working directory is the repository (the images copy the templates from it); of the images'
  environment only ``PYTHONUNBUFFERED`` is set, the rest (PATH, TRADESTREAM_TEMPLATE_DIR) names
  paths inside the image.

Not emulated: restart policies, except on request (``restart``: a service that exits is
reported, and started again only when a test says so and its policy allows it), volumes,
networks, profiles, scaling, ``env_file``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import yaml

from tests.support.localstack import free_port, stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-+?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)
_URL_HOST_PORT = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d+)"
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in variables
        current = variables.get(name, "")
        if op in (":-", "-"):
            use_default = not current if op == ":-" else not present
            return arg if use_default else current
        if op in (":+", "+"):
            use_alt = bool(current) if op == ":+" else present
            return arg if use_alt else ""
        if op in (":?", "?") and (not current if op == ":?" else not present):
            raise ValueError(f"compose requires {name}: {arg}")
        return current

    return _VARIABLE.sub(replace, value)


def _interpolate_all(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_all(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_all(item, variables) for key, item in node.items()}
    return node


def duration_s(value: str | int | float | None, default: float) -> float:
    """Compose's durations ("1m30s", "500ms"); plain numbers are seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    parts = _DURATION.findall(value)
    if not parts:
        raise ValueError(f"not a compose duration: {value!r}")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


@dataclass(frozen=True)
class HealthCheck:
    test: list[str] | None  # exec form; None: HEALTHCHECK NONE / disable
    shell: str | None = None  # CMD-SHELL / shell form
    interval_s: float = 30
    timeout_s: float = 30
    retries: int = 3
    start_period_s: float = 0

    @property
    def budget_s(self) -> float:
        """How long compose would take at most to call the service unhealthy."""
        return self.start_period_s + self.retries * (self.interval_s + self.timeout_s)


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    environment: dict[str, str]
    depends_on: dict[str, str]  # service -> condition
    healthcheck: HealthCheck | None
    container_ports: tuple[int, ...]
    stop_grace_s: float
    restart: str = "no"


def load(compose_file: Path, variables: Mapping[str, str] | None = None) -> dict[str, Service]:
    raw = yaml.safe_load(compose_file.read_text())
    spec: dict[str, Any] = _interpolate_all(raw, variables or {})
    return {
        name: _service(name, body, compose_file.parent) for name, body in spec["services"].items()
    }


# The variables a service's metrics listen with (the producer's and the runtime's).
METRICS_PORTS = ("METRICS_PORT", "RUNTIME_METRICS_PORT")
METRICS_HOSTS = ("METRICS_HOST", "RUNTIME_METRICS_HOST")


def _service(name: str, body: dict[str, Any], root: Path) -> Service:
    command = body.get("command") or []
    if isinstance(command, str):
        command = shlex.split(command)
    depends = body.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {dep: {"condition": "service_started"} for dep in depends}
    ports = {int(str(p).split(":")[-1].split("/")[0]) for p in body.get("ports", [])}
    if "--port" in command:
        ports.add(int(command[command.index("--port") + 1]))
    # Metrics ports the environment sets are ports the container listens on too.
    ports |= {int(v) for k, v in _environment(body).items() if k in METRICS_PORTS and v}
    return Service(
        name=name,
        command=[str(part) for part in command],
        environment={k: "" if v is None else str(v) for k, v in _environment(body).items()},
        depends_on={
            dep: str(cond.get("condition", "service_started")) for dep, cond in depends.items()
        },
        healthcheck=_compose_healthcheck(body.get("healthcheck"))
        or _dockerfile_healthcheck(body, root),
        container_ports=tuple(sorted(ports)),
        stop_grace_s=duration_s(body.get("stop_grace_period"), 10),
        restart=str(body.get("restart", "no")),
    )


def _environment(body: dict[str, Any]) -> dict[str, Any]:
    environment = body.get("environment") or {}
    if isinstance(environment, list):  # ["KEY=value", ...]
        return dict(item.partition("=")[::2] for item in environment)
    return dict(environment)


def _compose_healthcheck(check: dict[str, Any] | None) -> HealthCheck | None:
    if not check:
        return None
    timing = {
        "interval_s": duration_s(check.get("interval"), 30),
        "timeout_s": duration_s(check.get("timeout"), 30),
        "retries": int(check.get("retries", 3)),
        "start_period_s": duration_s(check.get("start_period"), 0),
    }
    test = check.get("test")
    if check.get("disable") or test in (["NONE"], "NONE"):
        return HealthCheck(None, **timing)
    if isinstance(test, str):
        return HealthCheck(None, shell=test, **timing)
    if test[0] == "CMD-SHELL":
        return HealthCheck(None, shell=test[1], **timing)
    return HealthCheck([str(part) for part in test[1:]], **timing)


def _dockerfile_healthcheck(body: dict[str, Any], root: Path) -> HealthCheck | None:
    build = body.get("build")
    if not isinstance(build, dict) or "dockerfile" not in build:
        return None
    dockerfile = root / build.get("context", ".") / build["dockerfile"]
    # Instructions continue over lines ending in a backslash; the last HEALTHCHECK wins.
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    found = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    if not found:
        return None
    words = found[-1].strip()
    if words == "NONE":
        return HealthCheck(None)
    options, _, cmd = words.partition("CMD")
    flags = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
    timing = {
        "interval_s": duration_s(flags.get("interval"), 30),
        "timeout_s": duration_s(flags.get("timeout"), 30),
        "retries": int(flags.get("retries", 3)),
        "start_period_s": duration_s(flags.get("start-period"), 0),
    }
    cmd = cmd.strip()
    if cmd.startswith("["):
        return HealthCheck([str(part) for part in json.loads(cmd)], **timing)
    return HealthCheck(None, shell=cmd, **timing)


# --- running them ---------------------------------------------------------------------------------


@dataclass
class Running:
    service: Service
    process: subprocess.Popen[bytes]
    log_path: Path
    command: list[str]
    healthcheck: list[str] | None


@dataclass
class ComposeRun:
    """The services of one compose file as processes; ``external`` services are already running
    (name -> URL, e.g. LocalStack) and are only mapped, not started."""

    services: dict[str, Service]
    workdir: Path
    external: dict[str, str]
    environment: dict[str, dict[str, str]] = field(default_factory=dict)  # per-service overrides
    ports: dict[tuple[str, int], int] = field(default_factory=dict)
    running: dict[str, Running] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, url in self.external.items():
            port = int(url.rsplit(":", 1)[1])
            for container_port in self.services[name].container_ports:
                self.ports[(name, container_port)] = port
        for name, service in self.services.items():
            if name not in self.external:
                for container_port in service.container_ports:
                    self.ports[(name, container_port)] = free_port()

    def url(self, service: str, container_port: int) -> str:
        return f"http://127.0.0.1:{self.ports[(service, container_port)]}"

    def order(self) -> list[str]:
        graph = {name: set(s.depends_on) for name, s in self.services.items()}
        return [
            name for name in TopologicalSorter(graph).static_order() if name not in self.external
        ]

    def up(self) -> None:
        """Start every service in dependency order, each once its dependencies' conditions hold."""
        for name in self.order():
            for dependency, condition in self.services[name].depends_on.items():
                if dependency not in self.external:
                    self._satisfy(dependency, condition)
            self._start(name)

    def wait_exit(self, name: str, timeout_s: float) -> int:
        try:
            return self.running[name].process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{name} still running after {timeout_s}s:\n{self.log_tail(name)}"
            ) from None

    def run_once(self, name: str, argv: list[str], timeout_s: float = 120) -> str:
        """``docker compose run <name> <argv>``: a one-off command in the service's environment;
        its stdout, or an AssertionError with its output when it fails."""
        done = subprocess.run(
            self.host_argv(name, argv),
            env=self.run_environment(name),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done.stdout

    def log_tail(self, name: str, lines: int = 30) -> str:
        text = self.running[name].log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, name: str) -> None:
        """``docker kill <name>``: SIGKILL with no grace, as an OOM kill or a lost host."""
        process = self.running[name].process
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def restart(self, name: str) -> None:
        """What ``restart: unless-stopped`` does once a service's container died."""
        if self.services[name].restart == "no":
            raise AssertionError(f"{name} has no restart policy: compose would leave it dead")
        self._start(name)

    def tmp(self, name: str) -> Path:
        """The directory standing in for the service's /tmp."""
        path = self.workdir / name / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def down(self) -> None:
        """Stop in reverse order: SIGTERM, then SIGKILL after the service's stop_grace_period."""
        for name in reversed(list(self.running)):
            stop_group(self.running[name].process, self.running[name].service.stop_grace_s)

    def __enter__(self) -> ComposeRun:
        return self

    def __exit__(self, *_: object) -> None:
        self.down()

    # --- one service ---

    def _start(self, name: str) -> None:
        service = self.services[name]
        command = self.host_argv(name, service.command)
        check = service.healthcheck
        probe = None
        if check is not None and check.test is not None:
            probe = self.host_argv(name, check.test)
        elif check is not None and check.shell is not None:
            probe = ["sh", "-c", self._host_string(name, check.shell)]
        environment = self.run_environment(name)
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:  # appended: a restarted service keeps its old log
            process = subprocess.Popen(
                command,
                env=environment,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[name] = Running(service, process, log_path, command, probe)

    def run_environment(self, name: str) -> dict[str, str]:
        return {
            **_host_basics(),
            "PYTHONUNBUFFERED": "1",
            **{
                key: self._host_value(name, key, v)
                for key, v in self.services[name].environment.items()
            },
            **self.environment.get(name, {}),
        }

    def _satisfy(self, name: str, condition: str) -> None:
        running = self.running[name]
        if condition == "service_completed_successfully":
            code = self.wait_exit(name, 300)
            if code != 0:
                raise AssertionError(f"{name} exited {code}:\n{self.log_tail(name)}")
        elif condition == "service_healthy":
            self._wait_healthy(running)

    def _wait_healthy(self, running: Running) -> None:
        name, check = running.service.name, running.service.healthcheck
        if check is None or running.healthcheck is None:
            raise AssertionError(f"{name} has no health check, but a service waits for it")
        # Probed more often than its interval (the test waits less), within compose's budget.
        deadline = time.monotonic() + check.budget_s
        while time.monotonic() < deadline:
            if running.process.poll() is not None:
                raise AssertionError(
                    f"{name} exited {running.process.returncode} before it was healthy:\n"
                    f"{self.log_tail(name)}"
                )
            if _probe(running.healthcheck, check.timeout_s):
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} not healthy within {check.budget_s}s:\n{self.log_tail(name)}")

    # --- what a container namespace would give ---

    def host_argv(self, name: str, argv: list[str]) -> list[str]:
        host = [self._host_string(name, part) for part in argv]
        if "--host" in host and host[host.index("--host") + 1] == "0.0.0.0":
            host[host.index("--host") + 1] = "127.0.0.1"
        if "--port" in host:
            at = host.index("--port") + 1
            host[at] = str(self.ports[(name, int(host[at]))])
        if host and host[0] in ("tradestream", "python"):
            host[0] = str(BIN / "tradestream") if host[0] == "tradestream" else sys.executable
        return host

    def _host_string(self, name: str, value: str) -> str:
        value = re.sub(r"(?<![\w/])/tmp/", str(self.tmp(name)) + "/", value)
        for port in self.services[name].container_ports:
            for host in ("127.0.0.1", "localhost"):
                value = value.replace(f"{host}:{port}", f"127.0.0.1:{self.ports[(name, port)]}")
        return self._host_urls(value)

    def _host_value(self, name: str, key: str, value: str) -> str:
        """A variable as the host process needs it: URLs to mapped ports, a metrics port
        mapped like a published one, listening on loopback as every host process does."""
        if key in METRICS_PORTS and value:
            return str(self.ports[(name, int(value))])
        if key in METRICS_HOSTS and value == "0.0.0.0":
            return "127.0.0.1"
        return self._host_urls(value)

    def _host_urls(self, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            key = (match.group("host"), int(match.group("port")))
            if key not in self.ports:
                return match.group(0)
            return f"{match.group('scheme')}127.0.0.1:{self.ports[key]}"

        return _URL_HOST_PORT.sub(replace, value)


def _host_basics() -> dict[str, str]:
    # A container starts from its image's environment, not the caller's: only what a process
    # needs to run on this host is passed on (the model cache lives under HOME / XDG_CACHE_HOME).
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_CACHE_HOME")
    return {key: os.environ[key] for key in keep if key in os.environ}


def _probe(argv: list[str], timeout_s: float) -> bool:
    try:
        return (
            subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
