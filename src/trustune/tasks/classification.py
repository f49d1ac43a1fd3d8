"""Text classification (single texts or pairs): a label map, cross-entropy, accuracy and friends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from trustune.config import Loss, RunConfig
from trustune.data import Columns, LabeledData, LabelMap, TrainingData
from trustune.errors import ArtifactError, ConfigError, DataError
from trustune.evaluate import classification_metrics, quick_metrics
from trustune.inference import softmax
from trustune.manifest import Manifest
from trustune.messages import shown
from trustune.tasks.base import Task
from trustune.tasks.registry import register_task

__all__ = ["TextClassification"]

# A label column is taken for text when most of its values are distinct and they are long: on
# average fewer than two examples per class, and values as long as a sentence.
_TEXT_LIKE_DISTINCT_SHARE = 0.5
_TEXT_LIKE_MIN_CLASSES = 20
_TEXT_LIKE_MEAN_CHARS = 20


@register_task
class TextClassification(Task):
    """One label per text (or text pair) out of a fixed set seen in training."""

    name = "text-classification"
    target_noun = "label"
    stratified = True
    default_selection = "accuracy"
    selection_metrics = ("accuracy", "f1_macro", "loss")
    headline = ("accuracy", "f1_macro", "roc_auc", "pr_auc", "ece")
    losses: ClassVar[tuple[Loss, ...]] = (Loss.CROSS_ENTROPY,)

    def __init__(self, label_map: LabelMap) -> None:
        self.label_map = label_map

    def __repr__(self) -> str:
        return f"TextClassification(labels={list(self.label_map.names)!r})"

    @classmethod
    def claims(cls, raw_targets: Sequence[Any]) -> bool:
        return True  # the fallback: anything that is not a score is a label

    @classmethod
    def check_columns(cls, data: LabeledData, columns: Columns, path: str) -> None:
        """A :class:`DataError` when the label column holds free text (swapped columns, a wrong
        pick) or scores (many distinct fractional numbers: a regression target)."""
        values = [str(v) for v in data.raw_labels]
        distinct = len(set(values))
        mean_chars = sum(len(v) for v in values) / len(values)
        if (
            distinct >= _TEXT_LIKE_MIN_CLASSES
            and distinct > _TEXT_LIKE_DISTINCT_SHARE * len(values)
            and mean_chars >= _TEXT_LIKE_MEAN_CHARS
        ):
            raise DataError(
                f"the label column {shown(columns.label)} of {path} looks like text, not labels: "
                f"{distinct} of {len(values)} values are distinct, {mean_chars:.0f} characters on "
                f"average; if the columns are swapped pass --text-column {shown(columns.label)} "
                f"--label-column {shown(columns.text)}"
            )
        from trustune.tasks.regression import numeric_targets

        numbers = numeric_targets(data.raw_labels)
        if (
            numbers is not None
            and distinct >= _TEXT_LIKE_MIN_CLASSES
            and not np.all(np.equal(np.mod(numbers, 1), 0))
        ):
            raise DataError(
                f"the label column {shown(columns.label)} of {path} holds {distinct} distinct "
                "fractional numbers: scores, not classes. Train a regression with --task "
                "text-regression"
            )

    @classmethod
    def fit(cls, data: TrainingData, config: RunConfig) -> TextClassification:
        if config.task.loss not in (Loss.AUTO, *cls.losses):
            raise ConfigError(
                f"--loss {config.task.loss.value} is not a classification loss; use "
                f"{[loss.value for loss in cls.losses]} (or auto)"
            )
        raw = list(data.train.raw_labels) + list(data.validation.raw_labels)
        if data.validation.info.get("source"):  # a validation file: classes come from training
            raw = list(data.train.raw_labels)
        task = cls(LabelMap.from_values(raw))
        task.encode(data.train, source=str(data.train.info.get("path")))
        task.encode(
            data.validation,
            source=str(data.validation.info.get("source") or data.validation.info.get("path")),
        )
        return task

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> TextClassification:
        labels = manifest.labels  # the reader checked each is a string or an integer
        if labels is None or len(labels) < 2:
            raise ArtifactError(
                "the manifest's labels must be a list of at least two strings or integers"
            )
        return cls(LabelMap(labels))

    def encode(self, part: LabeledData, *, source: str) -> None:
        part.encode(self.label_map, source=source)

    @property
    def labels(self) -> tuple[int | str, ...]:
        return self.label_map.names

    def head(self) -> dict[str, Any]:
        return {"id2label": self.label_map.id2label()}

    @property
    def outputs(self) -> int:
        return len(self.label_map)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, reduction="none")

    def quick_metrics(self, targets: np.ndarray, logits: np.ndarray) -> dict[str, float]:
        return quick_metrics(np.asarray(targets, dtype=np.int64), softmax(logits))

    def metrics(self, targets: Sequence[Any], logits: np.ndarray) -> dict[str, Any]:
        return classification_metrics(targets, softmax(logits), label_names=self.labels)

    def manifest_section(self) -> dict[str, Any]:
        return {"labels": list(self.label_map.names)}

    def describe(self) -> str:
        return f"{self.name}, {len(self.label_map)} labels"
