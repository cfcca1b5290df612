"""The templates pass cfn-lint and checkov; every checkov skip is inline, with its reason.

checkov runs from a venv of its own (tests/support/venvs.py, built once and cached, about 30 s):
its exact pins (boto3==1.35.49, packaging<24, networkx<2.7, ...) would pull the project's boto3
and aiobotocore back to 2024's releases if it shared .venv with them, so the tests would run
older SDKs than the images install. ``TRADESTREAM_CHECKOV`` names another checkov to use instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.venvs import VenvUnavailableError, cached_venv
from tradestream.cfn.template import TEMPLATE_DIR, load_template

TEMPLATES = sorted(TEMPLATE_DIR.glob("*.yaml"))
BIN = Path(sys.executable).parent
# The newest checkov on PyPI when last bumped: a newer one may bring checks these templates fail.
CHECKOV_VERSION = "3.3.30"


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Offline: checkov would otherwise try to download its guideline mapping from its SaaS.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    return subprocess.run(
        args, capture_output=True, text=True, timeout=240, env=env, cwd=cwd, check=False
    )


def test_there_are_templates() -> None:
    # GIVEN / WHEN the template folder is listed THEN the hot path's templates are there
    assert {"stream.yaml", "hotstore.yaml"} <= {path.name for path in TEMPLATES}


def test_cfn_lint_reports_nothing() -> None:
    # GIVEN every template WHEN cfn-lint checks them THEN it reports no error nor warning
    result = _run(str(BIN / "cfn-lint"), *map(str, TEMPLATES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def checkov() -> Path:
    given = os.environ.get("TRADESTREAM_CHECKOV")
    if given:
        return Path(given)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        venv = cached_venv(f"checkov-{CHECKOV_VERSION}", python, [f"checkov=={CHECKOV_VERSION}"])
    except VenvUnavailableError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run checkov, and cannot build its venv: {error}")
        pytest.skip(f"checkov's venv cannot be built: {error}")
    return venv / "bin" / "checkov"


def test_checkov_finds_no_failed_check(checkov: Path) -> None:
    # GIVEN the template folder WHEN checkov scans it, from inside it: checkov's parser puts the
    # path it was given into every mapping as "__file__", Lambda environments included, and
    # CKV_AWS_45 then takes a path holding a 40-character run of [A-Za-z0-9/+=] for an AWS secret
    # key (bridgecrewio/checkov#7310), so the verdict would hang on where the checkout lives.
    result = _run(
        str(checkov),
        "--framework",
        "cloudformation",
        "-d",
        ".",
        "--output",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",
        cwd=TEMPLATE_DIR,
    )

    # THEN nothing failed (and it really scanned: checks passed)
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    assert result.returncode == 0, result.stderr
    # AND it was the pinned checkov, unless another was named on purpose
    if not os.environ.get("TRADESTREAM_CHECKOV"):
        assert summary["checkov_version"] == CHECKOV_VERSION


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_checkov_skip_carries_its_reason(path: Path) -> None:
    # GIVEN a template WHEN its inline checkov skips are read
    template = load_template(path)
    skips = [
        (logical_id, skip)
        for logical_id, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]

    # THEN each names a check and says why it does not apply
    for logical_id, skip in skips:
        assert str(skip.get("id", "")).startswith("CKV"), (logical_id, skip)
        assert len(str(skip.get("comment", "")).split()) >= 8, (logical_id, skip)
