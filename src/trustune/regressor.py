"""A trained regression run, loaded: a score per text (or text pair), in the targets' unit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustune.errors import ArtifactError
from trustune.loaded import LoadedRun, register_loaded
from trustune.models.consistency import check_input_fit
from trustune.tasks import TextRegression

__all__ = ["ScorePrediction", "TextRegressor"]


@dataclass(frozen=True)
class ScorePrediction:
    """The predicted score."""

    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value}


@register_loaded
class TextRegressor(LoadedRun):
    """A fine-tuned regression model from a run folder (use :func:`trustune.load`)."""

    task_name = TextRegression.name
    task: TextRegression

    def _check_parts(self, model: Any, tokenizer: Any, max_length: Any) -> int:
        outputs = getattr(model.config, "num_labels", None)
        if outputs != 1:
            raise ArtifactError(
                f"{self.run_dir}: a regression run's model must have one output, this one has "
                f"{outputs} (num_labels in config.json); the manifest and the model are not of "
                "the same run"
            )
        return check_input_fit(model, tokenizer, max_length=max_length, where=str(self.run_dir))

    def __repr__(self) -> str:
        return f"TextRegressor(run={str(self.run_dir)!r})"

    @property
    def labels(self) -> tuple[int | str, ...]:
        """What explanations attribute to: the one output, the score."""
        return ("score",)

    def predict_values(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, *,
        batch_size: int = 32,
    ) -> np.ndarray:  # fmt: skip
        """Scores, shape (len(texts),), in the training targets' unit, in input order."""
        return self.task.values(self.logits(texts, text_pairs, batch_size=batch_size))

    def _predictions(self, logits: np.ndarray) -> list[ScorePrediction]:
        return [ScorePrediction(value=round(float(v), 6)) for v in self.task.values(logits)]
