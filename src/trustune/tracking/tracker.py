"""What a tracker records, in one place; the backends (MLflow, TensorBoard) only write it.

A :class:`Tracker` is a loop observer (:class:`~trustune.train.observer.RunObserver`):

- at the start, the parameters: the resolved configuration flattened (``train.lr``, ...);
- at every logging step, ``train/loss``, ``train/lr``, ``train/samples_per_s``,
  ``train/epoch`` and, under DP, ``train/epsilon`` (the budget spent so far);
- at every validation, the task's metrics as ``validation/<name>``;
- once the run folder is written, the best checkpoint's validation metrics from
  ``metrics.json`` as ``final/validation/<name>``, ``privacy/epsilon`` and ``privacy/delta``
  of a DP run, a summary, and (where the backend stores files) ``report.html`` and
  ``trustune.json``.

The configuration holds file paths, never texts, and no tracker sees a text of the data. A
failure of the tracking library (a server gone, a full disk) warns once, in one line, and ends
that tracker only: training goes on and the run folder keeps every record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustune.errors import TrainingInterrupted
from trustune.runs import flatten_config
from trustune.tracking.spec import reason_of

if TYPE_CHECKING:
    from trustune.manifest import Manifest

__all__ = [
    "FAILED",
    "FINISHED",
    "KILLED",
    "TrackedRun",
    "Tracker",
    "final_metrics",
    "param_text",
    "summary_text",
]

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"
_log = logging.getLogger("trustune.tracking")


def _log_warning(text: str) -> None:
    _log.warning("%s", text)


@dataclass(frozen=True)
class TrackedRun:
    """Who the tracked run is: its name (``trustune train``: the output folder's; ``tune``:
    ``trial-0003``), the experiment it belongs to, its tags, and where warnings go."""

    name: str
    experiment: str = "trustune"
    tags: Mapping[str, str] = field(default_factory=dict)
    warn: Callable[[str], None] = _log_warning


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def param_text(value: Any) -> str:
    """A parameter's value as text: strings as they are, the rest as JSON (``null``, ``true``)."""
    return value if isinstance(value, str) else json.dumps(value)


def final_metrics(metrics: Mapping[str, Any], manifest: Manifest) -> dict[str, float]:
    """The figures recorded once the run is written: the validation metrics of the best
    checkpoint and its ``speed`` (per-class tables, which name the labels, curves and the
    data's fingerprint left out) and the privacy spent."""
    validation = metrics.get("validation") or {}
    figures = {
        **{key: value for key, value in validation.items() if key != "speed"},
        **{f"speed/{key}": value for key, value in (validation.get("speed") or {}).items()},
    }
    out = {
        f"final/validation/{key}": number
        for key, value in figures.items()
        if (number := _number(value)) is not None
    }
    privacy = manifest.privacy
    if privacy is not None and privacy.dp:
        for name in ("epsilon", "delta"):
            if (number := _number(getattr(privacy, name))) is not None:
                out[f"privacy/{name}"] = number
    return out


def summary_text(metrics: Mapping[str, Any], manifest: Manifest) -> str:
    """A short Markdown summary of the run: task, model, rows, steps, headline metrics, ε."""
    training, data = manifest.training, manifest.data
    rows = [
        ("task", manifest.task),
        ("model", manifest.model.source),
        ("training rows", data.train.rows if data.train else None),
        ("steps", training.steps),
        ("best step", training.best_step),
        ("selected on", training.selection_metric),
    ]
    validation = metrics.get("validation") or {}
    rows += [
        (f"validation {name}", f"{number:.4f}")
        for name, value in validation.items()
        if (number := _number(value)) is not None
    ]
    privacy = manifest.privacy
    if privacy is not None and privacy.dp:
        rows.append(("privacy", f"ε = {privacy.epsilon:.3f}, δ = {privacy.delta:.3g}"))
    lines = ["| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows if value is not None]
    return "\n".join(lines)


class Tracker:
    """The loop events as named figures, written by a backend's ``open``, ``log_metrics``,
    ``log_final`` and ``close``; a library failure warns once and ends this tracker."""

    #: files of the run folder a backend that stores files records
    ARTIFACTS = ("report.html", "trustune.json")

    def __init__(self, *, label: str, secret: str | None, run: TrackedRun) -> None:
        self.label = label  # the spec as shown: its password hidden
        self.secret = secret  # the URI whose password is scrubbed from library messages
        self.run = run
        self.started = self.failed = False

    # -- the observer hooks -----------------------------------------------------------------

    def on_start(self, config: dict[str, Any], run_dir: Path) -> None:
        params = {key: param_text(value) for key, value in flatten_config(config).items()}
        self.started = self._guard(lambda: self.open(params, config, run_dir))

    def on_log(self, step: int, fields: dict[str, Any]) -> None:
        values = {
            f"train/{key}": number
            for key, value in fields.items()
            if (number := _number(value)) is not None
        }
        self._each(lambda: self.log_metrics(step, values))

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        values = {
            f"validation/{key}": number
            for key, value in metrics.items()
            if (number := _number(value)) is not None
        }
        self._each(lambda: self.log_metrics(step, values, flush=True))

    def on_finish(self, run_dir: Path, metrics: Mapping[str, Any], manifest: Manifest) -> None:
        step = manifest.training.steps or 0
        final, summary = final_metrics(metrics, manifest), summary_text(metrics, manifest)
        self._each(lambda: self.log_final(step, final, summary, run_dir))
        self._each(lambda: self.close(FINISHED))
        self.started = False

    def on_abort(self, error: BaseException) -> None:
        interrupted = isinstance(error, KeyboardInterrupt | TrainingInterrupted)
        self._each(lambda: self.close(KILLED if interrupted else FAILED))
        self.started = False

    # -- what a backend writes --------------------------------------------------------------

    def open(self, params: dict[str, str], config: dict[str, Any], run_dir: Path) -> None:
        """Start the tracked run; ``params`` as text, ``config`` as the loop resolved it."""
        raise NotImplementedError

    def log_metrics(self, step: int, values: dict[str, float], *, flush: bool = False) -> None:
        """Figures at ``step``; ``flush``: a validation, a moment to write out what is buffered."""
        raise NotImplementedError

    def log_final(self, step: int, values: dict[str, float], summary: str, run_dir: Path) -> None:
        """The final figures, the Markdown summary and the run folder's :attr:`ARTIFACTS`."""
        raise NotImplementedError

    def close(self, status: str) -> None:
        """End the tracked run as ``FINISHED``, ``FAILED`` or ``KILLED``."""
        raise NotImplementedError

    # -- failures ---------------------------------------------------------------------------

    def _each(self, call: Callable[[], None]) -> None:
        if self.started and not self.failed:
            self._guard(call)

    def _guard(self, call: Callable[[], None]) -> bool:
        try:
            call()
        except Exception as e:  # the library's own errors vary by backend and transport
            self.failed = True
            self.run.warn(
                f"--track {self.label}: tracking stopped, training goes on "
                f"({reason_of(e, self.secret)})"
            )
            return False
        return True
