"""model.tar.gz in the SageMaker scikit-learn framework layout:
``model.joblib``, ``metadata.json`` (with the model version) and ``code/inference.py`` +
``code/features.py`` (the very feature module training used)."""

from __future__ import annotations

import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIPPED_CODE = ("inference.py", "features.py")


def package(model_dir: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as archive:
        for name in ("model.joblib", "metadata.json"):
            archive.add(model_dir / name, arcname=name)
        for name in SHIPPED_CODE:
            archive.add(HERE / name, arcname=f"code/{name}")
    return out


def extract(artifact: Path, into: Path) -> Path:
    """Unpack a model.tar.gz as SageMaker does, into ``into`` (/opt/ml/model there)."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(artifact, "r:gz") as archive:
        archive.extractall(into, filter="data")
    return into
