"""Build each Lambda function's zip with only what the function needs.

The functions are read from the templates (every ``AWS::Lambda::Function``: its ``Handler``, its
``Runtime`` and the parameters its ``Code`` refers to), so a new function in a template is zipped
and wired by ``tradestream deploy`` with no change here. A zip holds the handler's package, the
repository modules it imports (``tradestream.deploy.closure``), and the third-party distributions
they import that the Lambda Python runtime lacks (it has boto3 and botocore), installed for
Lambda's platform and Python version at the versions this environment runs.

Zips are reproducible: sorted entries, fixed timestamps and permissions. The same sources give
the same bytes, hence the same content-addressed S3 key, so deploying twice changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradestream.cfn.template import TEMPLATE_DIR, load_template
from tradestream.deploy.closure import closure, distributions

REPO = Path(__file__).resolve().parents[2]
LAMBDA_PLATFORM = "manylinux2014_x86_64"  # the templates leave Architectures at x86_64
# What the Lambda Python runtime provides; a zip that carried them would shadow the runtime's.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
_SKIPPED = re.compile(r"(^|/)(__pycache__/|bin/)|\.pyc$")


class ZipBuildError(RuntimeError):
    """A function's zip could not be built (a template or an install problem)."""

    code = "ZipBuildFailed"


@dataclass(frozen=True)
class LambdaFunction:
    name: str  # the handler's package under lambdas/, e.g. "hotstore"
    handler: str  # e.g. "lambdas.hotstore.handler.handler"
    python_version: str  # from the template's Runtime, e.g. "3.12"
    template: str  # the template file that declares it
    bucket_parameter: str  # the template parameters its Code.S3Bucket / S3Key refer to
    key_parameter: str

    @property
    def package(self) -> str:
        return self.handler.rsplit(".", 2)[0]


def lambda_functions(template_dir: Path | None = None) -> tuple[LambdaFunction, ...]:
    """Every Lambda function the templates declare, sorted by name."""
    found = []
    for path in sorted((template_dir or TEMPLATE_DIR).glob("*.yaml")):
        for resource in load_template(path)["Resources"].values():
            if resource.get("Type") == "AWS::Lambda::Function":
                found.append(_function(path.name, resource.get("Properties", {})))
    return tuple(sorted(found, key=lambda f: f.name))


def _function(template: str, props: Mapping[str, Any]) -> LambdaFunction:
    handler, runtime, code = props.get("Handler"), props.get("Runtime"), props.get("Code", {})
    match = re.fullmatch(r"python(3\.\d+)", str(runtime))
    refs = {k: v.get("Ref") if isinstance(v, dict) else None for k, v in code.items()}
    if not (isinstance(handler, str) and handler.startswith("lambdas.") and match):
        raise ZipBuildError(f"{template}: a function needs Handler lambdas.* and a python Runtime")
    if not (refs.get("S3Bucket") and refs.get("S3Key")):
        raise ZipBuildError(f"{template}: Code must be S3Bucket/S3Key parameters (Ref)")
    return LambdaFunction(
        name=handler.split(".")[1],
        handler=handler,
        python_version=match.group(1),
        template=template,
        bucket_parameter=str(refs["S3Bucket"]),
        key_parameter=str(refs["S3Key"]),
    )


def build_lambda_zips(
    out_dir: Path,
    *,
    python_version: str | None = None,
    platform: str = LAMBDA_PLATFORM,
    functions: Iterable[LambdaFunction] | None = None,
) -> dict[str, Path]:
    """One zip per function in ``out_dir``, keyed by function name.

    Dependencies are wheels for ``platform`` and ``python_version`` (default: the Runtime each
    template declares). A test on this machine passes its own interpreter's version, so the zip
    imports here exactly as it will on Lambda with the template's.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    zips: dict[str, Path] = {}
    installed: dict[tuple[str, ...], Path] = {}  # functions sharing requirements share one install
    with tempfile.TemporaryDirectory(prefix="lambda-deps-") as scratch:
        for function in lambda_functions() if functions is None else functions:
            needs = closure(REPO, function.package)
            pins = distributions(needs.third_party - RUNTIME_PROVIDED)
            version = python_version or function.python_version
            requirements = tuple(f"{name}=={pin}" for name, pin in sorted(pins.items()))
            key = (version, platform, *requirements)
            if key not in installed:
                installed[key] = Path(scratch) / hashlib.sha256(repr(key).encode()).hexdigest()
                _install(installed[key], requirements, version, platform)
            zips[function.name] = _zip(
                needs.files, installed[key], out_dir / f"{function.name}.zip"
            )
    return zips


def _install(target: Path, requirements: tuple[str, ...], version: str, platform: str) -> None:
    command = [
        *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
        *("--no-compile", "--target", str(target)),
        *("--platform", platform, "--implementation", "cp", "--python-version", version),
        "--only-binary=:all:",
        *requirements,
    ]
    # Our own interpreter's pip, with arguments built above (no shell).
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise ZipBuildError(
            f"pip could not install {', '.join(requirements)} for Python {version} on {platform}"
            f" (it needs PyPI or a configured index):\n{result.stderr[-2000:]}"
        )


def _zip(files: Iterable[Path], deps: Path, out: Path) -> Path:
    entries = {
        path.relative_to(deps).as_posix(): path for path in deps.rglob("*") if path.is_file()
    }
    entries.update({relative.as_posix(): REPO / relative for relative in files})
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            if _SKIPPED.search(name):
                continue
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            # Lambda runs the code as another user than the owner: files must be world-readable.
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name].read_bytes())
    return out


def unzip(archive: Path, into: Path) -> Path:
    """Extract a zip as Lambda does, into an empty directory."""
    if into.exists() and any(into.iterdir()):
        raise ZipBuildError(f"{into} is not empty")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(into)
    return into
