"""What the loop keeps on disk while it trains, and when (the format is ``checkpoint.py``'s).

A resumable checkpoint after every validation and when training is interrupted; the best
weights (``checkpoints/best``) whenever the selection metric improves, loaded back into the
model at the end. The main process writes; every process waits for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from trustune.models.weights import load_weights
from trustune.train.checkpoint import TrainingState, save_checkpoint, save_weights_atomic

__all__ = ["CheckpointPolicy"]


class CheckpointPolicy:
    """Checkpoints of one run under ``folder`` (``step-N/``, ``best/``)."""

    def __init__(
        self,
        folder: Path,
        *,
        accelerator: Any,
        optimizer: Any,
        scheduler: Any,
        run_info: dict[str, Any],
        keep: int,
    ) -> None:
        self.folder, self.accelerator, self.keep = folder, accelerator, keep
        self.optimizer, self.scheduler, self.run_info = optimizer, scheduler, run_info

    @property
    def best(self) -> Path:
        return self.folder / "best" / "model.safetensors"

    def save(self, model: Any, state: TrainingState) -> None:
        """A checkpoint to resume from at ``state.step`` (the ``keep`` latest stay)."""
        acc = self.accelerator
        if acc.is_main_process:
            save_checkpoint(
                self.folder, model=acc.unwrap_model(model), optimizer=self.optimizer,
                scheduler=self.scheduler, state=state, run_info=self.run_info, keep=self.keep,
            )  # fmt: skip
        acc.wait_for_everyone()

    def save_best(self, model: Any) -> None:
        """The weights of a new best validation."""
        if self.accelerator.is_main_process:
            save_weights_atomic(self.accelerator.unwrap_model(model), self.best)

    def restore_best(self, model: Any) -> None:
        """Load the best weights into ``model`` (unwrapped); without a best file it stays."""
        if self.best.exists():
            load_weights(model, load_file(str(self.best)), where=str(self.best))
