"""Virtual environments for other Python versions, built once and cached, for the test tiers that
run a tool the project's own venv cannot hold (LocalStack needs Python 3.13; SageMaker's
scikit-learn serving stack needs Python 3.9 and 2023's pins; the SageMaker Python SDK's pins
would hold back the project's own, so the ``sagemaker`` extra lives in ``sagemaker_sdk_venv``).

A venv lives under ``$XDG_CACHE_HOME/tradestream/venvs/<name>-<hash>`` (``~/.cache`` without the
variable), where the hash covers the interpreter's exact version, the requirement list and the
files of any local directory it installs, so a changed pin or plugin builds a new venv and never
patches an old one. A lock file keeps two pytest processes from building the same venv at once;
a marker file, written last, tells a finished venv from one a killed build left behind.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

COMPLETE_MARKER = ".tradestream-complete"
REPO = Path(__file__).resolve().parents[2]


class VenvUnavailableError(RuntimeError):
    """No interpreter of the wanted version on this machine: the caller skips, saying this."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tradestream"


def find_python(minor: str) -> Path | None:
    """An interpreter of version ``minor`` (e.g. "3.13"): ``python3.13`` on PATH, else pyenv's.

    Every candidate is run once: a pyenv shim sits on PATH for versions pyenv holds but has not
    selected, and it fails when called.
    """
    candidates: list[str] = []
    on_path = shutil.which(f"python{minor}")
    if on_path:
        candidates.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    # Newest patch release first; "3.13.*" also matches "3.13.0t" (free-threaded): still a 3.13.
    for version_dir in sorted(glob.glob(f"{pyenv_root}/versions/{minor}.*"), reverse=True):
        candidates.append(f"{version_dir}/bin/python{minor}")
    for candidate in candidates:
        resolved = _real_interpreter(candidate, minor)
        if resolved is not None:
            return resolved
    return None


def _real_interpreter(candidate: str, minor: str) -> Path | None:
    try:
        done = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    version, _, executable = done.stdout.strip().partition(" ")
    return Path(executable) if version == minor and executable else None


def cached_venv(name: str, minor: str, requirements: Sequence[str], timeout_s: float = 900) -> Path:
    """The venv ``name`` for Python ``minor`` with ``requirements`` installed; built if missing.

    Raises ``VenvUnavailableError`` when no such interpreter exists here, and
    ``subprocess.CalledProcessError`` when the install fails (a real failure, not a skip).
    """
    python = find_python(minor)
    if python is None:
        raise VenvUnavailableError(
            f"no Python {minor} on PATH (python{minor}) or in pyenv's versions "
            f"($PYENV_ROOT/versions/{minor}.*)"
        )
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    venv = cache_dir() / "venvs" / f"{name}-{_digest(version, requirements)}"
    if (venv / COMPLETE_MARKER).exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.with_name(venv.name + ".lock")):
        if (venv / COMPLETE_MARKER).exists():  # another process built it while we waited
            return venv
        _build(python, venv, requirements, timeout_s)
    return venv


def _digest(version: str, requirements: Sequence[str]) -> str:
    digest = hashlib.sha256(version.encode())
    for requirement in requirements:
        digest.update(b"\0" + requirement.encode())
        local = Path(requirement)
        if local.is_dir():
            for path in _files(local):
                digest.update(str(path.relative_to(local)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and not any(p == "__pycache__" or p.endswith(".egg-info") for p in parts):
            yield path


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another process builds
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(python: Path, venv: Path, requirements: Sequence[str], timeout_s: float) -> None:
    # A directory without the marker is what a killed build left: never trust part of it.
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    print(f"building the cached venv {venv} (once)", file=sys.stderr)
    try:
        subprocess.run([*pip, "install", *requirements], check=True, timeout=timeout_s)
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / COMPLETE_MARKER).write_text("\n".join(requirements) + "\n")


def sagemaker_sdk_venv() -> Path:
    """A venv with the core and the ``sagemaker`` extra, as ``pip install 'tradestream[sagemaker]'``
    gives, on this interpreter's Python; the requirements are read from pyproject.toml, so a
    changed pin builds a new venv. The project itself is not installed: run the checkout's code
    there with ``PYTHONPATH`` (``sdk_command_env``)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["sagemaker"]]
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    return cached_venv("sagemaker-sdk", minor, requirements)


def sdk_command_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` with the checkout importable, and nothing of this venv's site-packages."""
    env = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONPATH": str(REPO)}
