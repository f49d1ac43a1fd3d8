"""Did the run learn? The majority-class baseline, and warnings when a run is no better than it.

A fine-tuned model that predicts the most frequent class for everything can still show a
respectable accuracy on unbalanced data; the baseline puts every accuracy next to that figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


def majority_baseline(class_counts: Mapping[str, Any]) -> float | None:
    """The accuracy of always predicting the most frequent class (None without counts)."""
    counts = [int(c) for c in class_counts.values() if isinstance(c, int | float)]
    total = sum(counts)
    return max(counts) / total if total else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def check_learning(manifest: Mapping[str, Any], validation: Mapping[str, Any]) -> LearningCheck:
    """Compare the validation accuracy with the baseline; look at the loss and the validation size."""
    counts = _mapping(
        _mapping(_mapping(manifest.get("data")).get("validation")).get("class_counts")
    )
    baseline = majority_baseline(counts)
    raw_accuracy = validation.get("accuracy")
    accuracy = float(raw_accuracy) if isinstance(raw_accuracy, int | float) else None
    warnings: list[str] = []
    if accuracy is not None and baseline is not None and accuracy <= baseline + BASELINE_MARGIN:
        warnings.append(
            f"the model did not learn: validation accuracy {accuracy:.3f} is at the majority-class "
            f"baseline {baseline:.3f} (always predicting the most frequent label); try more "
            "epochs, another --lr, or more rows per label"
        )
    history = _mapping(manifest.get("training")).get("history")
    losses = [
        float(entry["train_loss"])
        for entry in (history if isinstance(history, list) else [])
        if isinstance(entry, Mapping) and isinstance(entry.get("train_loss"), int | float)
    ]
    if len(losses) >= 2 and losses[0] > 0 and losses[-1] > (1 - MIN_LOSS_DROP) * losses[0]:
        warnings.append(
            f"the training loss barely moved ({losses[0]:.3f} → {losses[-1]:.3f}); try more "
            "epochs or a higher --lr"
        )
    rows = sum(int(c) for c in counts.values() if isinstance(c, int | float))
    smallest = min((int(c) for c in counts.values() if isinstance(c, int | float)), default=0)
    if counts and (rows < MIN_VALIDATION_ROWS or smallest < MIN_VALIDATION_PER_CLASS):
        warnings.append(
            f"the validation set is too small to select a checkpoint on ({rows} rows, "
            f"{smallest} of the rarest label); pass a larger --validation file or a larger "
            "--validation-fraction"
        )
    return LearningCheck(baseline=baseline, accuracy=accuracy, warnings=warnings)
