"""Validation during training and the early-stopping rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trustune.encoding import Encoded
from trustune.tasks import Task
from trustune.train.checkpoint import TrainingState

__all__ = ["EarlyStopping", "Validator"]


class Validator:
    """The task's quick metrics of the model in training on the validation rows."""

    def __init__(
        self,
        *,
        accelerator: Any,
        task: Task,
        encoded: Encoded,
        targets: Sequence[Any],
        pad_id: int,
        batch_size: int,
    ) -> None:
        self.accelerator, self.task, self.encoded = accelerator, task, encoded
        self.targets, self.pad_id, self.batch_size = targets, pad_id, batch_size

    def __call__(self, model: Any) -> dict[str, float]:
        """Validate ``model`` (left in training mode afterwards)."""
        acc = self.accelerator
        unwrapped = acc.unwrap_model(model)
        with acc.autocast():
            outputs = self.task.compute_outputs(
                unwrapped, self.encoded, self.targets, batch_size=self.batch_size,
                pad_id=self.pad_id, device=acc.device,
            )  # fmt: skip
        unwrapped.train()
        # object: token targets are one list per example
        return self.task.quick_metrics(np.asarray(self.targets, dtype=object), outputs)


class EarlyStopping:
    """Keeps the best value of the selection metric in the training state and says when
    ``patience`` validations in a row brought no improvement (0: never)."""

    def __init__(self, task: Task, *, selection: str, patience: int) -> None:
        self.task, self.selection, self.patience = task, selection, patience

    def update(self, state: TrainingState, metrics: dict[str, float]) -> bool:
        """Record one validation; True when it is the best so far."""
        value = self.task.selection_value(metrics, self.selection)
        if state.best_metric is None or value > state.best_metric:
            state.best_metric, state.best_step = value, state.step
            state.evaluations_without_improvement = 0
            return True
        state.evaluations_without_improvement += 1
        return False

    def exhausted(self, state: TrainingState) -> bool:
        return bool(self.patience) and state.evaluations_without_improvement >= self.patience
