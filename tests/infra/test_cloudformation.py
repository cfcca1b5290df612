"""The templates pass cfn-lint and checkov; every checkov skip is inline, with its reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tradestream.cfn.template import TEMPLATE_DIR, load_template

TEMPLATES = sorted(TEMPLATE_DIR.glob("*.yaml"))
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # Offline: checkov would otherwise try to download its guideline mapping from its SaaS.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    return subprocess.run(args, capture_output=True, text=True, timeout=240, env=env, check=False)


def test_there_are_templates() -> None:
    # GIVEN / WHEN the template folder is listed THEN the hot path's templates are there
    assert {"stream.yaml", "hotstore.yaml"} <= {path.name for path in TEMPLATES}


def test_cfn_lint_reports_nothing() -> None:
    # GIVEN every template WHEN cfn-lint checks them THEN it reports no error nor warning
    result = _run(str(BIN / "cfn-lint"), *map(str, TEMPLATES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_finds_no_failed_check() -> None:
    # GIVEN the template folder WHEN checkov scans it
    result = _run(
        str(BIN / "checkov"),
        "--framework",
        "cloudformation",
        "-d",
        str(TEMPLATE_DIR),
        "--output",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",
    )

    # THEN nothing failed (and it really scanned: checks passed)
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    assert result.returncode == 0, result.stderr


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
