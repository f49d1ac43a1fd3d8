"""A trained classification run, loaded: labels and class probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustune.data import LabelMap
from trustune.inference import softmax
from trustune.loaded import LoadedRun, register_loaded
from trustune.models.consistency import check_run_parts
from trustune.tasks import TextClassification

__all__ = ["Prediction", "TextClassifier"]


@dataclass(frozen=True)
class Prediction:
    """The predicted label and the probability of every class."""

    label: int | str
    score: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "probabilities": self.probabilities}


@register_loaded
class TextClassifier(LoadedRun):
    """A fine-tuned classifier from a run folder (use :func:`trustune.load`)."""

    task_name = TextClassification.name
    task: TextClassification

    def _check_parts(self, model: Any, tokenizer: Any, max_length: Any) -> int:
        return check_run_parts(
            model, tokenizer, labels=list(self.manifest.labels or ()), max_length=max_length,
            where=str(self.run_dir),
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"TextClassifier(run={str(self.run_dir)!r}, labels={list(self.labels)!r})"

    @property
    def label_map(self) -> LabelMap:
        return self.task.label_map

    @property
    def labels(self) -> tuple[int | str, ...]:
        return self.label_map.names

    def predict_proba(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, *,
        batch_size: int = 32,
    ) -> np.ndarray:  # fmt: skip
        """Class probabilities, shape (len(texts), classes), in input order."""
        logits = self.logits(texts, text_pairs, batch_size=batch_size)
        if not len(logits):
            return np.empty((0, len(self.labels)), dtype=np.float32)
        return softmax(logits)

    def _predictions(self, logits: np.ndarray) -> list[Prediction]:
        if not len(logits):
            return []
        return [self._prediction(row) for row in softmax(logits)]

    def _prediction(self, row: np.ndarray) -> Prediction:
        best = int(row.argmax())
        probabilities = {str(n): round(float(p), 6) for n, p in zip(self.labels, row, strict=True)}
        return Prediction(
            label=self.labels[best], score=round(float(row[best]), 6), probabilities=probabilities
        )
