"""The accuracy guard: the compressed model against its parent on the same labeled rows.

The main metric is the task's selection default (accuracy for classification, Spearman for
regression); the drop is in points (hundredths). Besides it the guard records how often the two
agree (the same predicted class; for regression the largest and mean absolute difference of the
outputs), which is what a user of the parent would notice first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trustune.errors import AccuracyDropError, ConfigError

if TYPE_CHECKING:
    from trustune.data import LabeledData
    from trustune.loaded import LoadedRun

__all__ = ["check_drop", "compare_outputs", "measure", "read_validation"]


def read_validation(parent: LoadedRun, data: str | Path | None) -> LabeledData:
    """The guard's labeled rows: ``data``, else the parent's own validation file where it was a
    separate file that still has the recorded fingerprint."""
    from trustune.artifact import file_sha256
    from trustune.data import read_labeled

    manifest = parent.manifest
    if data is None:
        part = manifest.data.validation
        path = Path(part.path) if part is not None and part.path else None
        if (
            part is None
            or part.split_from_train
            or path is None
            or not path.is_file()
            or (part.sha256 and file_sha256(path) != part.sha256)
        ):
            raise ConfigError(
                "--data FILE is needed: labeled rows the compressed model is measured on against "
                f"the parent (the validation data of {parent.run_dir} is not a file that is still "
                "there unchanged)"
            )
        data = path
    labeled, _ = read_labeled(
        data, text_column=manifest.text_column, label_column=manifest.label_column,
        pair_column=manifest.text_pair_column, pairs=parent.pairs,
    )  # fmt: skip
    parent.task.encode(labeled, source=str(data))
    if len(labeled.texts) < 2:
        raise ConfigError(f"--data {data} has {len(labeled.texts)} row(s); the guard needs more")
    return labeled


def measure(model: LoadedRun, data: LabeledData) -> tuple[dict[str, Any], np.ndarray]:
    """The task's metrics of ``model`` on ``data`` and its raw outputs."""
    logits = model.logits(data.texts, data.pairs, batch_size=32)
    return model.task.metrics(data.labels, logits), logits


def compare_outputs(parent: np.ndarray, child: np.ndarray, *, classes: bool) -> dict[str, Any]:
    """How closely the child's outputs follow the parent's on the same rows."""
    diff = np.abs(parent.astype(np.float64) - child.astype(np.float64))
    out: dict[str, Any] = {
        "max_abs_output_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_output_diff": float(diff.mean()) if diff.size else 0.0,
    }
    if classes:
        out["prediction_agreement"] = float((parent.argmax(1) == child.argmax(1)).mean())
    return out


def check_drop(
    *, metric: str, parent_value: float, child_value: float, max_drop: float, force: bool,
    method: str, data: str,
) -> dict[str, Any]:  # fmt: skip
    """The guard's record; refuses (``AccuracyDropError``) a drop beyond ``max_drop`` points."""
    drop = round((parent_value - child_value) * 100, 4)
    record = {
        "metric": metric, "parent": parent_value, "compressed": child_value,
        "drop_points": drop, "max_drop": max_drop, "forced": bool(force and drop > max_drop),
        "data": data,
    }  # fmt: skip
    if drop > max_drop and not force:
        raise AccuracyDropError(
            f"--method {method} drops {metric} by {drop:.2f} points on {data} "
            f"({parent_value:.4f} -> {child_value:.4f}), more than --max-drop {max_drop:g}; "
            "nothing was written. Raise --max-drop, pass --force, or try another method"
        )
    return record
