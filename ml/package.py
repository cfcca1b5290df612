"""model.tar.gz in the SageMaker scikit-learn framework layout, and loading it back.

Layout (what SageMaker unpacks into /opt/ml/model)::

    model.joblib        the model (plain numbers, see inference.py)
    metadata.json       model_version, features, target, feature code digest
    code/inference.py   model_fn, input_fn, predict_fn, output_fn (SAGEMAKER_PROGRAM)
    code/features.py    the very feature module training used, byte for byte

A SageMaker training job writes the same members as files (``lay_out``) into /opt/ml/model,
which SageMaker packs into the job's own model.tar.gz.

The archive is reproducible: sorted members, zeroed times and owners, so the same model always
packs to the same bytes (and the same digest in S3).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

ML_DIR = Path(__file__).resolve().parent
MODEL_FILES = ("model.joblib", "metadata.json")
CODE_FILES = ("inference.py", "features.py")


class PackageError(ValueError):
    """A model directory that cannot be packaged as is; the message says what to do."""


def package(model_dir: Path, out: Path) -> Path:
    """Write ``out`` (model.tar.gz) from a trained model directory; returns ``out``."""
    members = _members(model_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("wb") as raw,
        # No name or time in the gzip header: the bytes depend on the contents only.
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        archive.addfile(_entry("code", tarfile.DIRTYPE, 0o755))
        for name, data in sorted(members):
            archive.addfile(_entry(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return out


def lay_out(model_dir: Path, into: Path) -> Path:
    """Write the package's members as files into ``into``, as SageMaker unpacks model.tar.gz:
    what a training job leaves in /opt/ml/model, which SageMaker then packs into the job's
    model.tar.gz for the endpoint. Returns ``into``."""
    for name, data in _members(model_dir):
        path = into / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return into


def _members(model_dir: Path) -> list[tuple[str, bytes]]:
    """(name in the package, bytes) of every member; refuses a model of other feature code."""
    metadata = read_metadata(model_dir)
    shipped = (ML_DIR / "features.py").read_bytes()
    if metadata.get("feature_code_sha256") != hashlib.sha256(shipped).hexdigest():
        raise PackageError(
            f"ml/features.py changed since {metadata.get('model_version')} was trained; "
            "train again, then package"
        )
    members = [(name, (model_dir / name).read_bytes()) for name in MODEL_FILES]
    members += [(f"code/{name}", (ML_DIR / name).read_bytes()) for name in CODE_FILES]
    return members


def extract(artifact: Path, into: Path) -> Path:
    """Unpack a model.tar.gz as SageMaker does (into /opt/ml/model there); returns ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(artifact, "r:gz") as archive:
        archive.extractall(into, filter="data")  # refuses absolute paths, "..", devices
    return into


def read_metadata(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "metadata.json"
    if not path.exists():
        raise PackageError(f"{model_dir} holds no metadata.json; is it a trained model directory?")
    metadata: dict[str, Any] = json.loads(path.read_text())
    return metadata


def load_inference(model_dir: Path) -> ModuleType:
    """Import a model's ``code/inference.py`` (which loads the features.py beside it) under a
    private name, as the container does, without touching sys.path or sys.modules."""
    path = model_dir / "code" / "inference.py"
    if not path.exists():
        raise PackageError(f"{model_dir} holds no code/inference.py; pass an extracted package")
    name = "_tradestream_inference_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PackageError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info
