"""docker-compose.yml, checked statically (there is no Docker daemon where this project is built):
the compose schema; that every service runs a command the project has, with variables its
settings read; that ports, URLs, names and startup order between services agree; and that exactly
one thing runs each consumer stage."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from dashboard.settings import DashboardSettings
from ingest_api.settings import IngestSettings
from producer.settings import ProducerSettings
from tradestream.cli.main import main
from tradestream.deploy import localstack as localstack_target
from tradestream.deploy.localstack import LOCALSTACK_SERVICES
from tradestream.local.hot_path import deploy as deploy_hot_path
from tradestream.local.lake import deploy_lake
from tradestream.local.settings import LocalSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
# Variables botocore reads itself, whatever the service.
STANDARD_AWS = {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# The settings class each command reads its environment with (None: it reads none).
SETTINGS_BY_COMMAND: dict[tuple[str, ...], type[Any] | None] = {
    ("tradestream", "deploy"): LocalSettings,  # the localstack target deploys LocalSettings' names
    ("tradestream", "local", "runtime"): LocalSettings,
    ("tradestream", "ingest"): IngestSettings,
    ("python", "-m", "producer"): ProducerSettings,
    ("tradestream", "model", "serve"): None,
    ("tradestream", "dashboard"): DashboardSettings,
}


# The metrics ports a service may set, with the host each listens on.
METRICS_VARIABLES = (
    ("METRICS_PORT", "METRICS_HOST"),
    ("RUNTIME_METRICS_PORT", "RUNTIME_METRICS_HOST"),
)


def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return loaded


def project_services() -> list[tuple[str, dict[str, Any]]]:
    return [(name, s) for name, s in services().items() if "build" in s]


def settings_of(service: dict[str, Any]) -> type[Any] | None:
    command = service["command"]
    return next(v for k, v in SETTINGS_BY_COMMAND.items() if list(k) == command[: len(k)])


def env_names(settings: type[Any]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


def dockerfile(service: dict[str, Any]) -> str:
    return (REPO / service["build"]["dockerfile"]).read_text()


def port_of(command: list[str]) -> int:
    return int(command[command.index("--port") + 1])


def test_compose_file_validates_against_the_compose_spec() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "service"), project_services(), ids=lambda v: str(v)[:20])
def test_every_command_exists_in_the_project(name: str, service: dict[str, Any]) -> None:
    # GIVEN a service's command WHEN it is looked up in the project
    command = service["command"]
    if command[:2] == ["python", "-m"]:
        # THEN a module runs it
        assert importlib.util.find_spec(f"{command[2]}.__main__") is not None
        return
    # THEN (a `tradestream` command) each word is a subcommand and each --option one of its own
    assert command[0] == "tradestream"
    group: click.Command = main
    for word in command[1:]:
        if word.startswith("-"):
            break
        assert isinstance(group, click.Group), f"{name}: {word} is not a subcommand"
        assert word in group.commands, f"{name}: `tradestream` has no `{word}` command (yet)"
        group = group.commands[word]
    options = {opt for p in group.params for opt in getattr(p, "opts", [])}
    for word in command:
        if word.startswith("--"):
            assert word in options, f"{name}: `{group.name}` has no {word} option (yet)"
    choices = {
        o: p.type.choices
        for p in group.params
        for o in getattr(p, "opts", [])
        if isinstance(p.type, click.Choice)
    }
    for option, value in itertools.pairwise(command):
        if option in choices:
            assert value in choices[option], f"{name}: {option} {value} is not a choice"


@pytest.mark.parametrize(("name", "service"), project_services(), ids=lambda v: str(v)[:20])
def test_every_variable_a_service_sets_is_read_by_its_settings(
    name: str, service: dict[str, Any]
) -> None:
    # GIVEN the settings class of the service's command
    settings = settings_of(service)
    allowed = STANDARD_AWS | (env_names(settings) if settings else set())
    allowed |= {v for v in service.get("environment", {}) if v.startswith("AWS_ENDPOINT_URL_")}
    # WHEN its environment is compared THEN nothing is set that nothing reads
    unknown = set(service.get("environment", {})) - allowed
    assert not unknown, f"{name} sets variables nothing reads: {unknown}"


def test_ports_and_urls_between_services_agree() -> None:
    all_services = services()
    localstack_ports = [str(p) for p in all_services["localstack"]["ports"]]
    for name, service in project_services():
        env = service.get("environment", {})
        if "AWS_ENDPOINT_URL" in env:
            url = urlsplit(env["AWS_ENDPOINT_URL"])
            assert url.hostname == "localstack", name
            assert any(p.endswith(f":{url.port}") for p in localstack_ports), name
        if "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" in env:
            url = urlsplit(env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"])
            assert url.hostname in all_services, name
            assert url.port == port_of(all_services[str(url.hostname)]["command"]), name
        for variable, value in env.items():
            # Every URL of another service names a port that service listens on, on an
            # interface other containers reach: its --port (--host 0.0.0.0), or the metrics
            # port its environment sets with the matching host 0.0.0.0.
            if not variable.endswith("_URL") or variable.startswith("AWS_ENDPOINT_URL"):
                continue
            url = urlsplit(value)
            target = all_services[str(url.hostname)]
            target_env, command = target.get("environment", {}), target["command"]
            reachable = {
                str(target_env[port])
                for port, host in METRICS_VARIABLES
                if port in target_env and target_env.get(host) == "0.0.0.0"
            }
            if "--port" in command and command[command.index("--host") + 1] == "0.0.0.0":
                reachable.add(str(port_of(command)))
            assert str(url.port) in reachable, f"{name}: {variable}={value}"
        for published in service.get("ports", []):
            # host:container, and the container side is where the command listens
            assert str(published).endswith(f":{port_of(service['command'])}"), name
            assert str(published).startswith("127.0.0.1:"), f"{name}: publish on loopback only"
        if "--port" in service["command"]:
            assert f"EXPOSE {port_of(service['command'])}" in dockerfile(service), name


def test_every_service_uses_the_names_the_deploy_creates() -> None:
    # GIVEN the names the deploy service creates (LocalSettings' variables)
    all_services = services()
    created = all_services["deploy"]["environment"]
    # THEN whoever names a stream, table, bucket or endpoint names the same one
    for name, service in project_services():
        for variable, value in service.get("environment", {}).items():
            if variable in ("STREAM_NAME", "TABLE_NAME", "BUCKET_NAME", "ENDPOINT_NAME"):
                assert value == created[variable], (name, variable)
    # AND the producer and the ingest API put to the stream the runtime reads
    assert all_services["producer"]["environment"]["STREAM_NAME"] == created["STREAM_NAME"]
    assert all_services["ingest"]["environment"]["STREAM_NAME"] == created["STREAM_NAME"]
    # AND the ingest API has a key (its settings refuse to start without one)
    assert "INGEST_API_KEYS" in all_services["ingest"]["environment"]


def test_exactly_one_thing_runs_each_consumer_stage() -> None:
    # GIVEN LocalStack's services: it runs neither Lambda nor Firehose ...
    localstack = services()["localstack"]["environment"]["SERVICES"].split(",")
    assert "lambda" not in localstack
    assert "firehose" not in localstack
    # ... and exactly what the localstack target deploys into it
    assert sorted(localstack) == sorted(LOCALSTACK_SERVICES)
    # AND the deploy service is the localstack target, which deploys the local flavour: no
    # function, mapping or delivery stream (tests/functional/test_deploy_localstack.py runs it)
    deploy = services()["deploy"]["command"]
    assert deploy[deploy.index("--target") + 1] == "localstack"
    for deployer in (deploy_hot_path, deploy_lake):
        assert inspect.signature(deployer).parameters["flavour"].default == "local"
    assert "flavour" not in inspect.getsource(localstack_target.deploy_localstack)
    # AND one service runs the emulations, once
    runners = [n for n, s in project_services() if s["command"][1:3] == ["local", "runtime"]]
    assert runners == ["runtime"]
    assert "replicas" not in services()["runtime"].get("deploy", {})


def test_startup_order_gives_a_working_pipeline_with_no_other_step() -> None:
    all_services = services()
    # GIVEN each dependency's condition
    for name, service in all_services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            condition = spec["condition"]
            target = all_services[dependency]
            # THEN "healthy" waits on a real health check, "completed" on a one-shot service
            if condition == "service_healthy":
                has_check = "healthcheck" in target or (
                    "build" in target and re.search(r"^HEALTHCHECK --", dockerfile(target), re.M)
                )
                assert has_check, f"{name} waits for {dependency}, which has no health check"
            else:
                assert condition == "service_completed_successfully", (name, dependency)
                assert target.get("restart") == "no", f"{dependency} is a one-shot service"
    # AND the order is: LocalStack, the deploy, the model, the runtime, then the sources
    deps = {n: set(s.get("depends_on", {})) for n, s in all_services.items()}
    assert deps["deploy"] == {"localstack"}
    assert deps["runtime"] == {"deploy", "model"}
    assert deps["ingest"] == deps["producer"] == {"deploy", "runtime"}


def test_the_runtime_is_healthy_on_the_file_its_command_writes() -> None:
    runtime = services()["runtime"]
    ready_file = runtime["command"][runtime["command"].index("--ready-file") + 1]
    check = re.search(r"^\s+CMD (\[.+\])$", dockerfile(runtime).split("HEALTHCHECK", 1)[1], re.M)
    assert check is not None
    assert json.loads(check.group(1))[-1] == ready_file


def test_images_run_what_compose_runs() -> None:
    for name, service in project_services():
        cmd = json.loads(re.findall(r"^CMD (.+)$", dockerfile(service), re.M)[-1])
        # the one-shot deploy and the dashboard reuse the runtime image with their own command
        if name not in ("deploy", "dashboard"):
            assert cmd == service["command"], name


def test_localstack_is_the_pinned_community_image_overridable_with_a_token() -> None:
    localstack = services()["localstack"]
    assert localstack["image"] == "${LOCALSTACK_IMAGE:-localstack/localstack:4.14.0}"
    assert localstack["environment"]["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}"
