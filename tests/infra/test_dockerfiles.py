"""Static checks of the container images (no Docker daemon here): hadolint, and what they run."""

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
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(bases) == 2, "a builder stage and a final stage"
    assert all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm( AS \w+)?", b) for b in bases)
    final = text.split("\nFROM ", 2)[-1]
    assert "pip wheel" not in final, "no build step in the final image"
    assert re.search(r"^USER 10001$", final, re.M)
    assert "TRADESTREAM_TEMPLATE_DIR=/app/infra/cloudformation" in final
    assert "COPY infra ./infra" in final
    cmd = json.loads(re.search(r"^CMD (.+)$", final, re.M).group(1))  # type: ignore[union-attr]
    assert cmd, "exec-form CMD"


@pytest.mark.parametrize(
    ("name", "path"), [("ingest", "/healthz"), ("model", "/ping")], ids=["ingest", "model"]
)
def test_servers_have_a_healthcheck_on_their_health_path(name: str, path: str) -> None:
    text = (REPO / "docker" / f"{name}.Dockerfile").read_text()
    assert "HEALTHCHECK" in text
    assert path in text
