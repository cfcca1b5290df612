"""docker-compose.yml, checked statically: the compose schema, that every service runs a command
the project has with variables its settings read, that ports and URLs agree, and that exactly one
thing runs each consumer stage."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from ingest_api.settings import IngestSettings
from producer.settings import ProducerSettings
from tradestream.cli import main
from tradestream.local import stack
from tradestream.local.settings import LocalSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
STANDARD_AWS = {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SETTINGS_BY_COMMAND = {
    ("tradestream", "local", "deploy"): LocalSettings,
    ("tradestream", "local", "runtime"): LocalSettings,
    ("tradestream", "ingest"): IngestSettings,
    ("python", "-m", "producer"): ProducerSettings,
    ("tradestream", "model", "serve"): None,
}


def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return loaded


def project_services() -> list[tuple[str, dict[str, Any]]]:
    return [(name, s) for name, s in services().items() if "build" in s]


def env_names(settings: type[Any]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


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
    command = service["command"]
    if command[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(f"{command[2]}.__main__") is not None
        return
    assert command[0] == "tradestream"
    group: click.Command = main
    for word in command[1:]:
        if word.startswith("-"):
            break
        assert isinstance(group, click.Group), f"{name}: {word} is not a subcommand"
        assert word in group.commands, f"{name}: no `{word}` command"
        group = group.commands[word]
    options = {opt for p in group.params for opt in getattr(p, "opts", [])}
    for word in command:
        if word.startswith("--"):
            assert word in options, f"{name}: {group.name} has no {word}"


@pytest.mark.parametrize(("name", "service"), project_services(), ids=lambda v: str(v)[:20])
def test_every_variable_a_service_sets_is_read_by_its_settings(
    name: str, service: dict[str, Any]
) -> None:
    key = next(k for k in SETTINGS_BY_COMMAND if list(k) == service["command"][: len(k)])
    settings = SETTINGS_BY_COMMAND[key]
    allowed = STANDARD_AWS | (env_names(settings) if settings else set())
    allowed |= {v for v in service.get("environment", {}) if v.startswith("AWS_ENDPOINT_URL_")}
    unknown = set(service.get("environment", {})) - allowed
    assert not unknown, f"{name} sets variables nothing reads: {unknown}"


def _port_of(command: list[str]) -> int:
    return int(command[command.index("--port") + 1])


def test_ports_and_urls_between_services_agree() -> None:
    all_services = services()
    for name, service in project_services():
        env = service.get("environment", {})
        if "AWS_ENDPOINT_URL" in env:
            url = urlsplit(env["AWS_ENDPOINT_URL"])
            assert url.hostname == "localstack", name
            assert any(str(p).endswith(f":{url.port}") for p in all_services["localstack"]["ports"])
        if "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" in env:
            url = urlsplit(env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"])
            assert url.hostname is not None
            assert url.port == _port_of(all_services[url.hostname]["command"])
        for published in service.get("ports", []):
            assert str(published).endswith(f":{_port_of(service['command'])}")
    # the model the runtime asks for is the endpoint name the lake template uses
    assert all_services["runtime"]["environment"]["ENDPOINT_NAME"] == "tradestream-model"


def test_exactly_one_thing_runs_each_consumer_stage() -> None:
    # LocalStack runs neither Lambda nor Firehose ...
    localstack = services()["localstack"]["environment"]["SERVICES"].split(",")
    assert "lambda" not in localstack
    assert "firehose" not in localstack
    # ... the stacks are deployed in the flavour that leaves functions, mapping and delivery
    # stream out ...
    assert inspect.signature(stack.deploy).parameters["flavour"].default == "local"
    # ... and one service runs the emulations, once.
    runners = [n for n, s in project_services() if s["command"][1:3] == ["local", "runtime"]]
    assert runners == ["runtime"]


def test_images_run_what_compose_runs() -> None:
    import json
    import re

    for name, service in project_services():
        dockerfile = (REPO / service["build"]["dockerfile"]).read_text()
        cmd = json.loads(re.findall(r"^CMD (.+)$", dockerfile, re.M)[-1])
        if name != "deploy":
            assert cmd == service["command"], name
