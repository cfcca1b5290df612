"""The entry point of a SageMaker training job: what the SageMaker scikit-learn container runs.

``tradestream model train --on sagemaker`` (``ml.sagemaker_job``) ships this file as the job's
``SAGEMAKER_PROGRAM`` beside a copy of ``ml/`` (features, labels, training, evaluation, packaging
and the lake reader), so a job trains with the very code a local retrain uses, and the model it
leaves behind carries the feature code the endpoint serves with (DESIGN.md's contract).

The container's contract, from the SageMaker training toolkit:

- input: the ``train`` channel, the lake's data prefix (S3Prefix, FullyReplicated) downloaded
  to ``SM_CHANNEL_TRAIN`` (/opt/ml/input/data/train) with the keys below the prefix as paths,
  Hive partitions (``symbol=…/date=…/``) included;
- hyperparameters: as ``--name value`` arguments, and as JSON in ``SM_HPS``;
- output: ``SM_MODEL_DIR`` (/opt/ml/model), which SageMaker packs into the job's model.tar.gz:
  here the package's members (``ml.package.lay_out``), so the endpoint loads it as it is;
  ``SM_OUTPUT_DATA_DIR`` (/opt/ml/output/data, the job's output.tar.gz): metrics, the model card,
  the lake's row counts; a failure's reason in ``SM_OUTPUT_DIR``/failure, which SageMaker shows
  as the job's FailureReason.

The image (1.2-1) has Python 3.9, numpy 1.24 and scikit-learn 1.2, and no network for pip: this
file and everything it imports keep to Python 3.9 and to the standard library, numpy, joblib and
scikit-learn. Run locally on a directory shaped like /opt/ml, it does exactly what the job does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ml.lake_rows import LakeStats, directory_history
from ml.package import PackageError, lay_out
from ml.train import DEFAULT_HORIZON_S, DEFAULT_SEED, TrainingDataError, train

CHANNEL = "train"
# Printed once each at the end, one per line, for the job's metric definitions to pick up.
REPORTED_METRICS = ("train_rows", "holdout_rows", "rmse_model", "rmse_no_change", "skill")
METRIC_LINE = "metric {name}={value!r}"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    args = _arguments(argv, environ)
    channel = Path(environ.get(f"SM_CHANNEL_{CHANNEL.upper()}", f"/opt/ml/input/data/{CHANNEL}"))
    model_dir = Path(environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    data_dir = Path(environ.get("SM_OUTPUT_DATA_DIR", str(output_dir / "data")))
    stats = LakeStats()
    try:
        history = directory_history(channel, stats)
        print(f"read {len(history)} distinct trades from {stats.objects} objects", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            result = train(
                Path(scratch),
                trades=history,
                seed=args.seed,
                horizon_s=args.horizon,
                source=args.source or None,
            )
            lay_out(result.model_dir, model_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
            for name in ("metrics.json", "model-card.md"):
                (data_dir / name).write_bytes((result.model_dir / name).read_bytes())
    except (TrainingDataError, PackageError) as exc:
        reason = f"{type(exc).__name__}: {exc} ({stats.objects} objects, {stats.lines} lines)"
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(reason + "\n")
        print(reason, file=sys.stderr)
        return 1
    (data_dir / "lake-stats.json").write_text(json.dumps(vars(stats), indent=2) + "\n")
    print(json.dumps({"model_version": result.model_version, **result.metrics}), flush=True)
    for name in REPORTED_METRICS:
        print(METRIC_LINE.format(name=name, value=result.metrics[name]), flush=True)
    return 0


def _arguments(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """Hyperparameters: the arguments the toolkit passes, over SM_HPS, over the defaults."""
    given: dict[str, Any] = json.loads(environ.get("SM_HPS") or "{}")
    parser = argparse.ArgumentParser(description="Train the tradestream model on a lake channel.")
    parser.add_argument("--seed", type=int, default=int(given.get("seed", DEFAULT_SEED)))
    parser.add_argument(
        "--horizon", type=float, default=float(given.get("horizon", DEFAULT_HORIZON_S))
    )
    # The lake's S3 URI, for the model's metadata and card: the container only sees the files.
    parser.add_argument("--source", default=str(given.get("source", "")))
    # Anything else the toolkit or a later release passes is not ours to refuse.
    args, _ = parser.parse_known_args(argv)
    return args


if __name__ == "__main__":
    sys.exit(main())
