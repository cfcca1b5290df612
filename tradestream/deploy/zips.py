"""Build each Lambda function's zip with only what the function needs.

A zip holds the function's package (``lambdas/<name>/``), the few core modules it imports, and the
third-party packages that are not in the Lambda Python runtime (boto3 and botocore are), installed
for Lambda's platform and Python version. The function list is data, so a new function is one
entry.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE_MODULES = (
    "tradestream/__init__.py",
    "tradestream/trade.py",
    "tradestream/aws.py",
    "tradestream/retry.py",
)
# Not in the Lambda runtime; boto3/botocore are, so they are left out.
REQUIREMENTS = ("pydantic>=2.7", "pydantic-settings>=2.7", "aws-lambda-powertools>=3.0")
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_PYTHON = "3.12"  # the Runtime the templates declare (python3.12)


@dataclass(frozen=True)
class Function:
    name: str
    handler: str


FUNCTIONS = (
    Function("hotstore", "lambdas.hotstore.handler.handler"),
    Function("enrich", "lambdas.enrich.handler.handler"),
)


def build_lambda_zips(
    out_dir: Path, *, python_version: str = LAMBDA_PYTHON, platform: str | None = LAMBDA_PLATFORM
) -> dict[str, Path]:
    """One zip per function in ``out_dir``; ``platform=None`` installs for this machine."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        deps = Path(scratch) / "deps"
        _install_requirements(deps, python_version, platform)
        return {f.name: _zip(f, deps, out_dir / f"{f.name}.zip") for f in FUNCTIONS}


def _install_requirements(target: Path, python_version: str, platform: str | None) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target)]
    if platform:
        command += [
            "--platform",
            platform,
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--only-binary=:all:",
        ]
    subprocess.run([*command, *REQUIREMENTS], check=True)  # noqa: S603 - our own interpreter


def _zip(function: Function, deps: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(deps.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, path.relative_to(deps).as_posix())
        for relative in ("lambdas/__init__.py", *CORE_MODULES):
            archive.write(REPO / relative, relative)
        package = REPO / "lambdas" / function.name
        for path in sorted(package.rglob("*.py")):
            archive.write(path, path.relative_to(REPO).as_posix())
    return out


def unzip(archive: Path, into: Path) -> Path:
    shutil.rmtree(into, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(into)
    return into
