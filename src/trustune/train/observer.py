"""Hooks into the training loop for what watches a run: trackers (MLflow, TensorBoard) and
tuners (a pruner that ends a hopeless trial).

An observer gets every logging step's figures and every validation's metrics; to end
training it raises :class:`~trustune.errors.StopTraining`, and the loop then stops as after
early stopping (the best checkpoint is the model). Observers see copies: they cannot change
what the loop records.

A tracker also wants the start and the end of a run; these hooks are optional (a pruner has
none): ``on_start(config, run_dir)`` is called by the loop once the configuration is resolved,
``on_finish(run_dir, metrics, manifest)`` by whoever writes the run folder (``finetune``,
``trustune train``) once it is written, and ``on_abort(error)`` by the same caller when
training or the writing fails (Ctrl-C included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from trustune.errors import StopTraining

if TYPE_CHECKING:
    from trustune.manifest import Manifest

__all__ = ["LoopObserver", "Observers", "RunObserver"]


class LoopObserver(Protocol):
    """What the loop calls; raise :class:`~trustune.errors.StopTraining` from either to stop."""

    def on_log(self, step: int, fields: dict[str, Any]) -> None:
        """After optimizer step ``step``: the progress figures (``loss``, ``samples_per_s``,
        ``epoch``, ``lr``; ``epsilon`` under DP)."""

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        """After every validation: the task's metrics (``loss``, ``accuracy``, ...) at ``step``
        (``epoch``: fractional, as in the history)."""


class RunObserver(LoopObserver, Protocol):
    """A :class:`LoopObserver` that also sees the run begin and end (a tracker). The
    :class:`Observers` call each hook only on the observers that have it."""

    def on_start(self, config: dict[str, Any], run_dir: Path) -> None:
        """Before the first step: the resolved configuration (``RunConfig.to_dict()``) and the
        folder the run is written in (the staging folder when replacing a run)."""

    def on_finish(self, run_dir: Path, metrics: Mapping[str, Any], manifest: Manifest) -> None:
        """The run folder is written: its ``metrics.json`` content and manifest."""

    def on_abort(self, error: BaseException) -> None:
        """Training or writing the run failed or was interrupted; nothing more follows."""


class Observers:
    """The loop's observers, called in order. Every one sees every event; the first
    :class:`~trustune.errors.StopTraining` raised is returned as the reason to stop."""

    def __init__(self, observers: Iterable[LoopObserver] = ()) -> None:
        self.observers = list(observers)

    def log(self, step: int, fields: dict[str, Any]) -> str | None:
        return self._each(lambda o: o.on_log(step, dict(fields)))

    def validation(self, step: int, epoch: float, metrics: dict[str, float]) -> str | None:
        return self._each(lambda o: o.on_validation(step, epoch, dict(metrics)))

    def start(self, config: dict[str, Any], run_dir: Path) -> None:
        for observer in self.observers:
            if (hook := getattr(observer, "on_start", None)) is not None:
                hook(config, run_dir)

    def finish(self, run_dir: Path, metrics: Mapping[str, Any], manifest: Manifest) -> None:
        for observer in self.observers:
            if (hook := getattr(observer, "on_finish", None)) is not None:
                hook(run_dir, metrics, manifest)

    def abort(self, error: BaseException) -> None:
        for observer in self.observers:
            if (hook := getattr(observer, "on_abort", None)) is not None:
                hook(error)

    def _each(self, call: Callable[[LoopObserver], None]) -> str | None:
        reason = None
        for observer in self.observers:
            try:
                call(observer)
            except StopTraining as stop:
                reason = reason or stop.reason
        return reason
