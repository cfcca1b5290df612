"""Static checks of the container images (no Docker daemon here): hadolint, and what the final
stage holds and runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).with_name("hadolint")
PACKAGES = ("tradestream", "producer", "lambdas", "ingest_api", "ml", "dashboard")


def final_stage(dockerfile: Path) -> str:
    return dockerfile.read_text().split("\nFROM ")[-1]


def instruction(text: str, name: str) -> list[str]:
    found = re.findall(rf"^{name} (\[.+\])$", text, re.M)
    assert found, f"no exec-form {name}"
    parsed: list[str] = json.loads(found[-1])
    return parsed


def test_there_is_one_dockerfile_per_deployable() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "producer.Dockerfile",
        "ingest.Dockerfile",
        "model.Dockerfile",
        "runtime.Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_no_warning(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_pinned_multi_stage_and_run_as_non_root(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    # GIVEN its stages: a builder and a final stage, both on one exactly pinned slim base
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(bases) == 2, "a builder stage and a final stage"
    assert len(set(bases)) == 1, "the venv is copied between stages: same base, same Python"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm", bases[0])
    final = final_stage(dockerfile)
    # THEN the final stage installs nothing (no pip, wheels or build tools) ...
    for installer in ("pip ", "apt-get", "/wheels"):
        assert installer not in final, installer
    assert "COPY --from=builder /opt/tradestream /opt/tradestream" in final
    # ... runs as a non-root user, with the templates where the code looks for them
    assert re.search(r"^USER 10001$", final, re.M)
    assert "useradd --system --uid 10001" in final
    assert "TRADESTREAM_TEMPLATE_DIR=/app/infra/cloudformation" in final
    assert "COPY infra/cloudformation ./infra/cloudformation" in final
    # ... and starts with an exec-form command
    assert instruction(final, "CMD")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_builder_caches_dependencies_apart_from_the_sources(dockerfile: Path) -> None:
    builder = dockerfile.read_text().split("\nFROM ")[1]
    dependencies = builder.index("-r requirements.txt")
    # every package is copied after the dependency layer, and the project is installed alone
    for package in PACKAGES:
        assert builder.index(f"COPY {package} ./{package}") > dependencies, package
    assert "pip install --no-cache-dir --no-deps ." in builder


@pytest.mark.parametrize(
    ("name", "probe"),
    [("ingest", "/healthz"), ("model", "/ping"), ("runtime", "tradestream-runtime.ready")],
)
def test_servers_have_a_healthcheck_on_their_health_signal(name: str, probe: str) -> None:
    final = final_stage(REPO / "docker" / f"{name}.Dockerfile")
    check = re.search(r"^HEALTHCHECK (.+?)\n\s+CMD (\[.+\])$", final, re.M)
    assert check is not None
    assert probe in " ".join(json.loads(check.group(2)))


def test_the_producer_declares_that_it_has_no_health_probe() -> None:
    assert re.search(r"^HEALTHCHECK NONE$", final_stage(REPO / "docker/producer.Dockerfile"), re.M)


@pytest.mark.parametrize(("name", "port"), [("ingest", 8000), ("model", 8080)])
def test_servers_expose_the_port_they_listen_on(name: str, port: int) -> None:
    final = final_stage(REPO / "docker" / f"{name}.Dockerfile")
    command = instruction(final, "CMD")
    assert f"EXPOSE {port}" in final
    assert command[command.index("--port") + 1] == str(port)
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_the_build_context_leaves_out_what_no_image_needs() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "tests", "build"} <= ignored
    copied = {
        m.split()[0]
        for p in DOCKERFILES
        for m in re.findall(r"^COPY (?!--from)(.+) \S+$", p.read_text(), re.M)
    }
    assert not {c.split("/")[0] for c in copied} & ignored, "an image copies an ignored path"
