"""The observer that reports a trial's validations to Optuna and ends a hopeless trial.

At each validation the trial reports the objective (the run's selection metric, as a number to
maximise) at step = the validation's number (1, 2, ...: per epoch by default, so trials with
different batch sizes compare at the same point); when the study's pruner says so, it raises
:class:`~trustune.errors.StopTraining` and the loop ends as after early stopping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trustune.errors import StopTraining
from trustune.tasks import get_task, known_tasks

__all__ = ["PruningObserver", "objective_value"]


def objective_value(metrics: Mapping[str, float], selection: str | None) -> tuple[str, float]:
    """(metric name, value to maximise) of a validation's metrics.

    ``selection``: the run's ``train.selection_metric`` (None or ``auto``: the default metric of
    the task whose metrics these are, found in the task registry)."""
    tasks = [get_task(name) for name in known_tasks()]
    if selection and selection != "auto":
        lower = any(selection in t.lower_is_better for t in tasks)
        return selection, -float(metrics[selection]) if lower else float(metrics[selection])
    for task in tasks:  # the task whose own selection metrics are all there
        if task.default_selection in metrics and set(task.selection_metrics) <= set(metrics):
            value = float(metrics[task.default_selection])
            lower = task.default_selection in task.lower_is_better
            return task.default_selection, -value if lower else value
    return "loss", -float(metrics["loss"])


class PruningObserver:
    """A :class:`~trustune.train.observer.LoopObserver` for one Optuna trial."""

    def __init__(self, trial: Any, *, selection: str | None) -> None:
        self.trial, self.selection = trial, selection
        self.validations = 0
        self.pruned_at: int | None = None  # the validation that ended the trial
        self.values: list[float] = []

    def on_log(self, step: int, fields: dict[str, Any]) -> None:
        """Nothing to do between validations."""

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.validations += 1
        _, value = objective_value(metrics, self.selection)
        if not math.isfinite(value):  # a constant prediction has no correlation: nothing to say
            return
        self.values.append(value)
        self.trial.report(value, self.validations)
        if self.trial.should_prune():
            self.pruned_at = self.validations
            raise StopTraining(
                f"pruned by the study at validation {self.validations} (epoch {epoch:.2f})"
            )
