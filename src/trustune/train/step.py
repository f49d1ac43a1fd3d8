"""How the loop takes a step: the :class:`StepStrategy` protocol and the plain step.

The loop owns the epochs, the schedule, validation and checkpoints; a step strategy owns what
differs between ordinary and differentially private training: the batch order, how a batch is
collated, how the model and optimizer are prepared, one step on one batch, and the state a
checkpoint keeps for it. :class:`PlainStep` is the ordinary one; the DP-SGD step is
:class:`trustune.privacy.PrivateStep`. :func:`step_for` picks one from the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import torch

from trustune.config import Precision, RunConfig
from trustune.encoding import Encoded
from trustune.errors import CheckpointError, TrustuneError
from trustune.privacy import PrivateStep
from trustune.train.batching import LengthGroupedBatchSampler

__all__ = ["BatchOrder", "Criterion", "PlainStep", "StepFactory", "StepStrategy", "step_for"]

# the task's per-example loss: (logits, targets) -> (batch,)
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class BatchOrder(Protocol):
    """A resumable batch sampler: the micro-batches of one epoch as lists of row indices."""

    def position(self, epoch: int, *, start_batch: int = 0) -> None:
        """Where the next iteration starts."""

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int:
        """Micro-batches left in the epoch from the current position."""
        ...


class StepStrategy(Protocol):
    """One way of taking training steps, called by the loop in this order:

    ``precision`` and ``check_processes`` (before anything is loaded), ``setup`` (model and
    data loaded, optimizer not built yet), ``batch_order`` and ``collate`` (the data loader),
    ``prepare``, ``load_state_dict`` (on resume), then ``step`` per micro-batch, with
    ``progress_fields`` and ``state_dict`` at every logging step and checkpoint, and ``finish``
    once training is over.
    """

    # micro-batches the Accelerator accumulates into one optimizer step
    accumulation_steps: int

    @property
    def optimizer_stepped(self) -> bool:
        """Whether the last :meth:`step` completed an optimizer step (False inside accumulation)."""
        ...

    def precision(self, resolved: Precision) -> Precision:
        """The arithmetic to train in, given what the hardware and the settings resolved to."""
        ...

    def check_processes(self, processes: int) -> None:
        """Refuse a number of training processes this step cannot handle."""

    def setup(
        self,
        *,
        config: RunConfig,
        model: torch.nn.Module,
        encoded: Encoded,
        targets: Sequence[Any],
        pad_id: int,
        criterion: Criterion,
        device: torch.device,
    ) -> None:
        """Take the run's settings (as sized for the data), the loaded model (before its
        optimizer is built: a strategy may freeze parameters) and the encoded training rows."""

    def batch_order(self) -> BatchOrder:
        """The sampler of training batches (built once; the loop positions it every epoch)."""
        ...

    def collate(self, indices: list[int]) -> Any:
        """One batch of ``batch_order`` as what :meth:`step` takes."""

    def prepare(
        self, accelerator: Any, model: Any, optimizer: Any, loader: Any
    ) -> tuple[Any, Any, Any]:
        """Model, optimizer and loader ready to train; the optimizer returned is the one
        checkpoints save and the scheduler drives."""
        ...

    def step(self, batch: Any) -> tuple[float, int]:
        """Train on one micro-batch; returns its mean loss and its number of examples."""
        ...

    def progress_fields(self, *, live: bool) -> dict[str, float]:
        """Figures of this step for the progress bar (``live``) and the history (``epsilon``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Sections this step adds to the checkpoint's ``extra`` (JSON), e.g. ``privacy``."""
        ...

    def load_state_dict(self, extra: Mapping[str, Any]) -> None:
        """Continue from a checkpoint's ``extra`` sections."""

    def changed_data_error(self, message: str) -> TrustuneError:
        """The error for resuming on training data other than the checkpoint's."""
        ...

    def finish(self) -> None:
        """Training is over: leave the model a plain model again."""


StepFactory = Callable[[RunConfig], StepStrategy]


class PlainStep:
    """The ordinary step: length-grouped batches, Accelerate's autocast and gradient
    accumulation, the batch gradient clipped to ``max_grad_norm``."""

    def __init__(self, config: RunConfig) -> None:
        self.accumulation_steps = config.train.gradient_accumulation_steps
        self.config = config
        self.accelerator: Any = None
        self.model: Any = None
        self.optimizer: Any = None

    @property
    def optimizer_stepped(self) -> bool:
        return bool(self.accelerator.sync_gradients)

    def precision(self, resolved: Precision) -> Precision:
        return resolved

    def check_processes(self, processes: int) -> None:
        return None

    def setup(
        self,
        *,
        config: RunConfig,
        model: torch.nn.Module,
        encoded: Encoded,
        targets: Sequence[Any],
        pad_id: int,
        criterion: Criterion,
        device: torch.device,
    ) -> None:
        self.config, self.encoded, self.targets = config, encoded, targets
        self.pad_id, self.criterion = pad_id, criterion

    def batch_order(self) -> LengthGroupedBatchSampler:
        tc = self.config.train
        return LengthGroupedBatchSampler(
            self.encoded.lengths(),
            batch_size=tc.batch_size,
            seed=tc.seed,
            group_by_length=tc.group_by_length,
        )

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        labels = [self.targets[i] for i in indices]
        return self.encoded.batch(indices, pad_id=self.pad_id, labels=labels)

    def prepare(
        self, accelerator: Any, model: Any, optimizer: Any, loader: Any
    ) -> tuple[Any, Any, Any]:
        self.accelerator = accelerator
        self.model, self.optimizer, loader = accelerator.prepare(model, optimizer, loader)
        return self.model, self.optimizer, loader

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
        acc, max_norm = self.accelerator, self.config.train.max_grad_norm
        with acc.accumulate(self.model):
            targets = batch.pop("labels")
            logits = self.model(**batch).logits
            loss = self.criterion(logits, targets).mean()
            acc.backward(loss)
            if acc.sync_gradients and max_norm:
                acc.clip_grad_norm_(self.model.parameters(), max_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()), int(batch["input_ids"].shape[0]) * acc.num_processes

    def progress_fields(self, *, live: bool) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, extra: Mapping[str, Any]) -> None:
        return None

    def changed_data_error(self, message: str) -> TrustuneError:
        return CheckpointError(message)

    def finish(self) -> None:
        return None


def step_for(config: RunConfig) -> StepStrategy:
    """The step a configuration asks for: DP-SGD with ``privacy.epsilon``, else the plain one."""
    if config.privacy.enabled:
        return PrivateStep(config)
    return PlainStep(config)
