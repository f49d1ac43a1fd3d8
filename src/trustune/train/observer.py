"""Hooks into the training loop for what watches a run: trackers (MLflow, TensorBoard) and
tuners (a pruner that ends a hopeless trial).

An observer gets every logging step's figures and every validation's metrics; to end
training it raises :class:`~trustune.errors.StopTraining`, and the loop then stops as after
early stopping (the best checkpoint is the model). Observers see copies: they cannot change
what the loop records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from trustune.errors import StopTraining

__all__ = ["LoopObserver", "Observers"]


class LoopObserver(Protocol):
    """What the loop calls; raise :class:`~trustune.errors.StopTraining` from either to stop."""

    def on_log(self, step: int, fields: dict[str, Any]) -> None:
        """After optimizer step ``step``: the progress figures (``loss``, ``samples_per_s``,
        ``epoch``, ``lr``; ``epsilon`` under DP)."""

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        """After every validation: the task's metrics (``loss``, ``accuracy``, ...) at ``step``
        (``epoch``: fractional, as in the history)."""


class Observers:
    """The loop's observers, called in order. Every one sees every event; the first
    :class:`~trustune.errors.StopTraining` raised is returned as the reason to stop."""

    def __init__(self, observers: Iterable[LoopObserver] = ()) -> None:
        self.observers = list(observers)

    def log(self, step: int, fields: dict[str, Any]) -> str | None:
        return self._each(lambda o: o.on_log(step, dict(fields)))

    def validation(self, step: int, epoch: float, metrics: dict[str, float]) -> str | None:
        return self._each(lambda o: o.on_validation(step, epoch, dict(metrics)))

    def _each(self, call: Callable[[LoopObserver], None]) -> str | None:
        reason = None
        for observer in self.observers:
            try:
                call(observer)
            except StopTraining as stop:
                reason = reason or stop.reason
        return reason
