"""``--track tensorboard[:DIR]``: TensorBoard event files, written by torch's ``SummaryWriter``.

``tensorboard`` alone writes into the run folder (``runs/NAME/tensorboard/``); ``tensorboard:DIR``
writes into ``DIR/<run name>/``, so that ``tensorboard --logdir DIR`` shows several runs (the
trials of a study) side by side. Scalars carry the step figures and validation metrics; the
configuration and the final metrics go to the HParams dashboard, the run's summary to the Text
dashboard. TensorBoard stores no files: ``report.html`` and ``trustune.json`` stay in the run
folder, whose path the summary names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustune.errors import ConfigError
from trustune.runs import flatten_config
from trustune.tracking.registry import register_tracker
from trustune.tracking.tracker import TrackedRun, Tracker, param_text

__all__ = ["DEFAULT_FOLDER", "TensorBoardTracker"]

DEFAULT_FOLDER = "tensorboard"  # inside the run folder
_INSTALL = "pip install 'trustune[tensorboard]'"


def _hparam(value: Any) -> Any:
    """A value the HParams plugin takes (a number, a string, a bool); others as JSON text."""
    return value if isinstance(value, int | float | str | bool) else param_text(value)


class TensorBoardTracker(Tracker):
    """One event folder per tracked run."""

    def __init__(self, folder: str | None, run: TrackedRun) -> None:
        label = "tensorboard" if folder is None else f"tensorboard:{folder}"
        super().__init__(label=label, secret=None, run=run)
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except ImportError as e:
            raise ConfigError(f"--track {label} needs TensorBoard: {_INSTALL}") from e
        self.writer_type = SummaryWriter
        root = None if folder is None else Path(folder).expanduser()
        if root is not None and root.exists() and not root.is_dir():
            raise ConfigError(f"--track {label}: {folder} is a file; give a folder for the events")
        self.folder = None if root is None else root / run.name
        self.writer: Any = None
        self.hparams: dict[str, Any] = {}

    def open(self, params: dict[str, str], config: dict[str, Any], run_dir: Path) -> None:
        logdir = self.folder or run_dir / DEFAULT_FOLDER
        self.writer = self.writer_type(log_dir=str(logdir))
        self.hparams = {key: _hparam(value) for key, value in flatten_config(config).items()}

    def log_metrics(self, step: int, values: dict[str, float], *, flush: bool = False) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)
        if flush:
            self.writer.flush()

    def log_final(self, step: int, values: dict[str, float], summary: str, run_dir: Path) -> None:
        from torch.utils.tensorboard.summary import hparams

        # add_hparams would write them into a folder of their own; these go with the scalars
        for part in hparams(self.hparams, values):
            self.writer.file_writer.add_summary(part, step)
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, global_step=step)
        files = ", ".join(f"`{run_dir / name}`" for name in self.ARTIFACTS)
        self.writer.add_text("summary", f"{summary}\n\nrun folder records: {files}", step)

    def close(self, status: str) -> None:
        if self.writer is None:
            return
        self.writer.add_text("status", status)
        self.writer.close()
        self.writer = None


@register_tracker("tensorboard", target="DIR")
def tensorboard_tracker(target: str | None, run: TrackedRun) -> Tracker:
    return TensorBoardTracker(target, run)
