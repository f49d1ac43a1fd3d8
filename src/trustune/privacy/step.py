"""The DP-SGD step of the training loop (``trustune.train.step.StepStrategy``).

Poisson-sampled batches, each split into padded physical batches, one clipped and noised
optimizer step per sample (:class:`~trustune.privacy.engine.PrivateTraining`); fp32 only, one
process only, and the accountant's and the secret random streams' state in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from trustune.config import Precision, RunConfig
from trustune.encoding import Encoded
from trustune.errors import PrivacyError, TrustuneError
from trustune.privacy.engine import (
    PoissonBatchSampler,
    PrivateTraining,
    check_sampler,
    physical_batches,
    plan_privacy,
    private_precision,
)

__all__ = ["PrivateStep"]


class PrivateStep:
    """Clipped per example, noised, accounted: the step of a run with ``privacy.epsilon``."""

    accumulation_steps = 1  # its own accumulation, over the physical batches of one sample
    optimizer_stepped = True  # every Poisson sample is one optimizer step

    def __init__(self, config: RunConfig) -> None:
        self.requested = config.train.precision
        self.private: PrivateTraining | None = None

    def precision(self, resolved: Precision) -> Precision:
        return private_precision(self.requested)

    def check_processes(self, processes: int) -> None:
        if processes > 1:
            raise PrivacyError(
                "--dp-epsilon trains in one process only (DP with several processes is not "
                "supported yet); run without accelerate launch"
            )

    def setup(
        self,
        *,
        config: RunConfig,
        model: torch.nn.Module,
        encoded: Encoded,
        targets: Sequence[Any],
        pad_id: int,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        device: torch.device,
    ) -> None:
        self.encoded, self.targets, self.pad_id = encoded, targets, pad_id
        plan = plan_privacy(config, train_rows=len(targets))
        self.private = PrivateTraining(plan, device=device, criterion=criterion)
        self.private.freeze(model)

    def _training(self) -> PrivateTraining:
        if self.private is None:
            raise RuntimeError("PrivateStep.setup must run first")
        return self.private

    def batch_order(self) -> PoissonBatchSampler:
        sampler = self._training().sampler(self.encoded.lengths())
        check_sampler(sampler)
        return sampler

    def collate(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        return physical_batches(
            indices, encoded=self.encoded, labels=self.targets, pad_id=self.pad_id,
            physical_batch_size=self._training().plan.physical_batch_size,
        )  # fmt: skip

    def prepare(
        self, accelerator: Any, model: Any, optimizer: Any, loader: Any
    ) -> tuple[Any, Any, Any]:
        # the model stays unwrapped: Opacus hooks it, the noisy optimizer wraps AdamW (the
        # scheduler and the checkpoints keep the AdamW itself)
        model = model.to(accelerator.device)
        self._training().attach(model, optimizer)
        return model, optimizer, loader

    def step(self, batch: list[dict[str, torch.Tensor]]) -> tuple[float, int]:
        return self._training().step(batch)

    def progress_fields(self, *, live: bool) -> dict[str, float]:
        """ε spent so far: for the progress bar (``live``, rate-limited) and the history."""
        private = self._training()
        if live:
            return {"epsilon": private.epsilon_for_display()}
        return {"epsilon": round(private.epsilon(), 4)}

    def state_dict(self) -> dict[str, Any]:
        return {"privacy": self._training().state_dict()}

    def load_state_dict(self, extra: Mapping[str, Any]) -> None:
        self._training().load_state_dict(extra.get("privacy"))

    def changed_data_error(self, message: str) -> TrustuneError:
        return PrivacyError(f"{message}; a DP run's ε is accounted for one fixed training set")

    def finish(self) -> None:
        self._training().detach()
