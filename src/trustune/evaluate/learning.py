"""Did the run learn? The majority-class baseline, and warnings when a run is no better than it.

A fine-tuned model that predicts the most frequent class for everything can still show a
respectable accuracy on unbalanced data; the baseline puts every accuracy next to that figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trustune.manifest import DataPart, Manifest
from trustune.values import finite

__all__ = ["LearningCheck", "check_learning", "majority_baseline"]

# How far above the majority-class baseline an accuracy must be to count as learned: two points,
# below the standard error of a few hundred validation rows, so this flags only clear failures.
BASELINE_MARGIN = 0.02
# The training loss must fall by at least this share of its first value.
MIN_LOSS_DROP = 0.10
# Fewer validation rows than this (or than this many per class) cannot select a checkpoint.
MIN_VALIDATION_ROWS = 30
MIN_VALIDATION_PER_CLASS = 5


@dataclass(frozen=True)
class LearningCheck:
    """The majority-class baseline of the validation set and what looks wrong with the run."""

    baseline: float | None
    accuracy: float | None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "accuracy": self.accuracy, "warnings": self.warnings}


def _class_counts(class_counts: Mapping[str, Any]) -> list[int]:
    return [int(c) for c in map(finite, class_counts.values()) if c is not None]


def majority_baseline(class_counts: Mapping[str, Any]) -> float | None:
    """The accuracy of always predicting the most frequent class (None without counts)."""
    counts = _class_counts(class_counts)
    total = sum(counts)
    return max(counts) / total if total else None


def check_learning(manifest: Manifest, validation: Mapping[str, Any]) -> LearningCheck:
    """Compare the validation accuracy with the baseline; look at the loss and the validation size."""
    split = manifest.data.validation or DataPart()
    class_counts = split.class_counts
    counts = _class_counts(class_counts)
    baseline = majority_baseline(class_counts)
    accuracy = finite(validation.get("accuracy"))
    warnings: list[str] = []
    if accuracy is not None and baseline is not None and accuracy <= baseline + BASELINE_MARGIN:
        warnings.append(
            f"the model did not learn: validation accuracy {accuracy:.3f} is at the majority-class "
            f"baseline {baseline:.3f} (always predicting the most frequent label); try more "
            "epochs, another --lr, or more rows per label"
        )
    r2 = finite(validation.get("r2"))
    if r2 is not None and r2 <= BASELINE_MARGIN:
        warnings.append(
            f"the model did not learn: validation R² {r2:.3f} is at the baseline of always "
            "predicting the mean score (R² 0); try more epochs, another --lr, or more rows"
        )
    rows = finite(split.rows)
    if not counts and rows is not None and rows < MIN_VALIDATION_ROWS:
        warnings.append(
            f"the validation set is too small to select a checkpoint on ({rows:.0f} rows); pass "
            "a larger --validation file or a larger --validation-fraction"
        )
    losses = [
        loss
        for loss in (finite(e.get("train_loss")) for e in manifest.training.history)
        if loss is not None
    ]
    if len(losses) >= 2 and losses[0] > 0 and losses[-1] > (1 - MIN_LOSS_DROP) * losses[0]:
        warnings.append(
            f"the training loss barely moved ({losses[0]:.3f} → {losses[-1]:.3f}); try more "
            "epochs or a higher --lr"
        )
    if counts and (sum(counts) < MIN_VALIDATION_ROWS or min(counts) < MIN_VALIDATION_PER_CLASS):
        warnings.append(
            f"the validation set is too small to select a checkpoint on ({sum(counts)} rows, "
            f"{min(counts)} of the rarest label); pass a larger --validation file or a larger "
            "--validation-fraction"
        )
    return LearningCheck(baseline=baseline, accuracy=accuracy, warnings=warnings)
