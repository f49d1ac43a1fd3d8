"""DP-SGD inside trustune's training loop, built on Opacus.

The loop's DP step (:class:`~trustune.privacy.step.PrivateStep`) asks a
:class:`PrivateTraining` for its data order (Poisson sampling), hands it each sampled batch
(``step``: per-example clipping, calibrated Gaussian noise, the optimizer step) and stores its
JSON state in checkpoints. The parts come from Opacus: the Poisson sampler,
the per-example gradient hooks (ghost clipping or materialised per-example gradients), the
noisy optimizer and the accountant; trustune assembles them itself rather than through
``PrivacyEngine.make_private`` for three reasons:

- the model stays the plain Hugging Face model (hooks, not a wrapper), so checkpoints, the
  best-weights file and ``save_pretrained`` see the usual parameter names;
- sampling and noise draw from a generator seeded with secret randomness whose state the
  checkpoint keeps, so a resumed run continues the same random stream (and ε) exactly;
- ghost clipping's first backward pass, which only needs the per-example gradient *norms*,
  asks autograd for the gradient of the (frozen) embedding output alone: no parameter
  gradient is computed in it; and where every trainable layer is a ``Linear`` or
  ``LayerNorm`` (BERT with frozen embeddings) the clipped gradient sum is then contracted
  from what that pass saw (book-keeping, ``bookkeeping.py``) instead of a second backward
  pass (BENCHMARKS.md has the step times).
"""

from __future__ import annotations

import base64
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from trustune.config import Accountant, Clipping, Precision, RunConfig
from trustune.encoding import Encoded
from trustune.errors import PrivacyError
from trustune.privacy.accountant import (
    PrivacyAccountant,
    default_delta,
    noise_for_epsilon,
    require_opacus,
)
from trustune.privacy.bookkeeping import BookKeeper

__all__ = [
    "PoissonBatchSampler",
    "PrivacyPlan",
    "PrivateTraining",
    "check_sampler",
    "manifest_section",
    "physical_batches",
    "plan_privacy",
    "private_precision",
]

_SELECTION_NOTE = (
    "Early stopping and the choice of the best checkpoint used the validation set only; the "
    "guarantee covers the training rows, not the validation rows."
)


@dataclass(frozen=True)
class PrivacyPlan:
    """The DP-SGD settings of one run, fixed before the first step."""

    target_epsilon: float
    delta: float
    delta_rule: str  # how δ was chosen: "1/N^1.1" or "given"
    accountant: str
    clipping: str
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    logical_batch_size: int  # expected examples per step (q * N)
    physical_batch_size: int
    steps_per_epoch: int
    planned_steps: int
    train_rows: int
    freeze_embeddings: bool


def private_precision(requested: Precision) -> Precision:
    """DP trains in fp32: per-example norms computed in bf16 can come out low, and a norm that
    is too low lets an example's gradient past the clipping bound the guarantee rests on."""
    if requested is Precision.BF16:
        raise PrivacyError(
            "--precision bf16 is refused with --dp-epsilon: per-example gradient norms in bf16 "
            "can be under-estimated, which breaks the clipping bound; use --precision fp32 or auto"
        )
    return Precision.FP32


def plan_privacy(config: RunConfig, *, train_rows: int) -> PrivacyPlan:
    """Noise calibrated to the target ε, δ, epochs and sample rate; refusals with reasons."""
    pc, tc = config.privacy, config.train
    if pc.epsilon is None:
        raise PrivacyError("privacy.epsilon is not set; pass --dp-epsilon")
    limit = 1.0 / train_rows
    delta, rule = (
        (pc.delta, "given") if pc.delta is not None else (default_delta(train_rows), "1/N^1.1")
    )
    if delta >= limit:
        raise PrivacyError(
            f"--dp-delta {delta:.3g} is not below 1/N = {limit:.3g} for N={train_rows} training "
            f"rows: a mechanism may then publish a whole record. Use at most {limit / 10:.3g} "
            "(or leave it unset for 1/N^1.1)"
        )
    logical = tc.batch_size * tc.gradient_accumulation_steps
    if logical >= train_rows:
        raise PrivacyError(
            f"the batch ({logical} examples) is not smaller than the training set ({train_rows} "
            "rows); Poisson sampling needs a sample rate below 1: lower --batch-size"
        )
    steps_per_epoch = math.ceil(train_rows / logical)
    sample_rate = 1.0 / steps_per_epoch
    planned = steps_per_epoch * tc.epochs
    sigma = noise_for_epsilon(
        target_epsilon=pc.epsilon, delta=delta, sample_rate=sample_rate, steps=planned,
        accountant=pc.accountant,
    )  # fmt: skip
    physical = pc.physical_batch_size or (
        tc.batch_size
        if tc.gradient_accumulation_steps > 1
        else math.ceil(logical + 3 * math.sqrt(logical))  # Poisson's spread: rarely split
    )
    clipping = Clipping.GHOST if pc.clipping is Clipping.AUTO else pc.clipping
    return PrivacyPlan(
        target_epsilon=float(pc.epsilon), delta=float(delta), delta_rule=rule,
        accountant=pc.accountant.value, clipping=clipping.value,
        max_grad_norm=float(tc.max_grad_norm), noise_multiplier=sigma, sample_rate=sample_rate,
        logical_batch_size=round(sample_rate * train_rows), physical_batch_size=physical,
        steps_per_epoch=steps_per_epoch, planned_steps=planned, train_rows=train_rows,
        freeze_embeddings=pc.freeze_embeddings,
    )  # fmt: skip


def check_sampler(sampler: object) -> None:
    """Only uniform Poisson sampling matches the accountant; anything else is refused."""
    if not isinstance(sampler, PoissonBatchSampler):
        raise PrivacyError(
            f"DP-SGD needs uniform Poisson sampling; a {type(sampler).__name__} (weighted, "
            "balanced or custom order) breaks the privacy accounting. Drop the custom sampler"
        )


class PoissonBatchSampler:
    """Batches drawn by Poisson sampling (each row in with probability q), resumable.

    Opacus's ``UniformWithReplacementSampler`` draws the batches from a generator seeded with
    ``(secret seed, epoch)``, so the order is unpredictable from outside yet a resumed run
    replays the same batches. Indices come back sorted by length (longest first): sorting
    inside a sampled batch leaves the sample unchanged and lets physical batches pad less.
    """

    def __init__(
        self, lengths: Sequence[int], *, sample_rate: float, steps_per_epoch: int, seed: int
    ) -> None:
        self.lengths = list(lengths)
        self.sample_rate = sample_rate
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0

    def position(self, epoch: int, *, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)
        sampler = UniformWithReplacementSampler(
            num_samples=len(self.lengths), sample_rate=self.sample_rate, generator=generator,
            steps=self.steps_per_epoch,
        )  # fmt: skip
        for i, batch in enumerate(sampler):
            if i >= self.start_batch:
                yield sorted(batch, key=lambda j: -self.lengths[j])

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_batch


def physical_batches(
    indices: Sequence[int],
    *,
    encoded: Encoded,
    labels: Sequence[Any],
    pad_id: int,
    physical_batch_size: int,
) -> list[dict[str, torch.Tensor]]:
    """One sampled batch as padded physical batches with explicit, contiguous position ids.

    BERT builds missing position ids by expanding a (1, seq) buffer over the batch; Opacus's
    per-example code takes the batch size from every layer input and fails on that view.
    """
    out = []
    for start in range(0, len(indices), physical_batch_size):
        chunk = indices[start : start + physical_batch_size]
        batch = encoded.batch(chunk, pad_id=pad_id, labels=[labels[i] for i in chunk])
        width = batch["input_ids"].shape[1]
        batch["position_ids"] = torch.arange(width).repeat(len(chunk), 1)  # (batch, seq)
        out.append(batch)
    return out


def _embeddings(model: torch.nn.Module) -> torch.nn.Module | None:
    base = getattr(model, "base_model", None)
    found = getattr(base, "embeddings", None)
    return found if isinstance(found, torch.nn.Module) else None


Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")


class PrivateTraining:
    """Clipped, noised steps for one run, with the accountant that tracks ε."""

    def __init__(
        self,
        plan: PrivacyPlan,
        *,
        device: torch.device | str = "cpu",
        criterion: Criterion = _cross_entropy,
        lean_first_pass: bool = True,
        book_keeping: bool = True,
    ) -> None:
        """``criterion`` maps logits and targets to the loss of every example (the task's loss,
        the same function the plain step averages). ``lean_first_pass=False`` uses Opacus's own ghost clipping (two full backward passes)
        even where trustune's lighter first pass applies; ``book_keeping=False`` keeps the
        lighter first pass but takes the clipped sum from a second backward pass. Both are for
        comparison and debugging: the three give the same gradients."""
        require_opacus()
        self.plan = plan
        self.criterion = criterion
        self.lean_first_pass = lean_first_pass
        self.book_keeping = book_keeping
        self.bookkeeper: BookKeeper | None = None
        self.device = torch.device(device)
        # Secret randomness for sampling and noise: with a seed anyone can read (the config's),
        # the noise could be recomputed and subtracted. The checkpoint keeps it for resume.
        self.secret_seed = int.from_bytes(os.urandom(8), "little") >> 1
        self.noise_generator = torch.Generator(device=self.device).manual_seed(self.secret_seed)
        self.accountant = PrivacyAccountant(Accountant.parse(plan.accountant, "accountant"))
        self.epsilon_history: list[dict[str, Any]] = []
        self._anchor: list[torch.Tensor] = []
        self._shown: tuple[float, float] = (-math.inf, 0.0)
        self.hooks: Any = None
        self.optimizer: Any = None
        self.model: torch.nn.Module | None = None
        self.trainable: list[torch.nn.Parameter] = []
        self.frozen: list[str] = []
        self._sampler: PoissonBatchSampler | None = None
        self._anchor_hook: Any = None
        self._epsilon_at: tuple[int, float] = (-1, 0.0)

    # -- setting up ---------------------------------------------------------------------

    def freeze(self, model: torch.nn.Module) -> list[str]:
        """Freeze the embedding layer (when planned); returns the names of frozen parameters."""
        if not self.plan.freeze_embeddings:
            return []
        embeddings = _embeddings(model)
        if embeddings is None:
            return []
        frozen = []
        prefix = next(n for n, m in model.named_modules() if m is embeddings)
        for name, param in embeddings.named_parameters():
            param.requires_grad_(False)
            frozen.append(f"{prefix}.{name}")
        self.frozen = frozen
        return frozen

    def sampler(self, lengths: Sequence[int]) -> PoissonBatchSampler:
        self._sampler = PoissonBatchSampler(
            lengths, sample_rate=self.plan.sample_rate,
            steps_per_epoch=self.plan.steps_per_epoch, seed=self.secret_seed,
        )  # fmt: skip
        return self._sampler

    def attach(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Any:
        """Per-example gradient hooks on ``model`` (left unwrapped) and the noisy optimizer."""
        from opacus.grad_sample.utils import prepare_module
        from opacus.optimizers import get_optimizer_class
        from opacus.validators import ModuleValidator

        model.train()
        problems = ModuleValidator.validate(model, strict=False)
        if problems:
            raise PrivacyError(
                f"this model has layers DP-SGD cannot train per example: {problems[:3]}; "
                "choose a BERT-family model"
            )
        mode, plan = self.plan.clipping, self.plan
        kwargs: dict[str, Any] = {"batch_first": True, "loss_reduction": "mean"}
        if mode == Clipping.GHOST.value:
            kwargs["max_grad_norm"] = plan.max_grad_norm
        self.hooks = prepare_module(model, grad_sample_mode=mode, wrap_model=False, **kwargs)
        optimizer_class = get_optimizer_class(
            clipping="flat", distributed=False, grad_sample_mode=mode
        )
        self.optimizer = optimizer_class(
            optimizer=optimizer, noise_multiplier=plan.noise_multiplier,
            max_grad_norm=plan.max_grad_norm, expected_batch_size=plan.logical_batch_size,
            loss_reduction="mean", generator=self.noise_generator,
        )  # fmt: skip
        self.optimizer.attach_step_hook(self._account)
        self.model = model
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        embeddings = _embeddings(model)
        frozen = embeddings is not None and not any(
            p.requires_grad for p in embeddings.parameters()
        )
        if mode == Clipping.GHOST.value and frozen and self.lean_first_pass:
            assert embeddings is not None
            self._anchor_hook = embeddings.register_forward_hook(self._mark_anchor)
            if self.book_keeping and BookKeeper.applies(model):
                self.bookkeeper = BookKeeper(model)
        return self.optimizer

    def detach(self) -> None:
        """Remove every hook from the model: after training it is a plain model again."""
        if self.hooks is not None:
            self.hooks.cleanup()  # hooks and the attributes Opacus put on parameters
            self.hooks = None
        if self._anchor_hook is not None:
            self._anchor_hook.remove()
            self._anchor_hook = None
        if self.bookkeeper is not None:
            self.bookkeeper.remove()
            self.bookkeeper = None

    def _account(self, optimizer: Any) -> None:
        self.accountant.step(
            noise_multiplier=self.plan.noise_multiplier, sample_rate=self.plan.sample_rate
        )

    def _mark_anchor(self, module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
        # The frozen embeddings' output, made to require grad: the first backward pass asks
        # for its gradient only, which runs every hooked layer but computes no weight gradient.
        if torch.is_grad_enabled() and module.training:
            output.requires_grad_(True)
            self._anchor = [output]

    # -- one step -------------------------------------------------------------------------

    def step(self, batches: list[dict[str, torch.Tensor]]) -> tuple[float, int]:
        """One DP-SGD step over the physical batches of one Poisson sample.

        Returns the mean training loss and the number of examples. An empty sample still
        takes a noise-only step: the accountant assumes every step adds noise.
        """
        assert self.model is not None and self.optimizer is not None
        total_loss, examples = 0.0, 0
        if not batches:
            self._empty_step()
            return 0.0, 0
        for i, batch in enumerate(batches):
            self.optimizer.signal_skip_step(do_skip=i < len(batches) - 1)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            labels = batch.pop("labels")
            if self.bookkeeper is not None:
                self.bookkeeper.clear()
            logits = self.model(**batch).logits
            losses = self.criterion(logits, labels)  # (batch,)
            self._backward(losses)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            total_loss += float(losses.detach().sum())
            examples += int(labels.shape[0])
        return total_loss / max(examples, 1), examples

    def _backward(self, losses: torch.Tensor) -> None:
        if self.plan.clipping == Clipping.HOOKS.value:
            with warnings.catch_warnings():
                # the first hooked layer's input (frozen embeddings) needs no gradient: expected
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                losses.mean().backward()
            return
        trainable = self.trainable
        if not self._anchor:
            self._ghost_backward_opacus(losses)
            return
        for p in trainable:
            p._norm_sample = None  # type: ignore[attr-defined]
        anchor, self._anchor = self._anchor, []
        keeper = self.bookkeeper
        # pass 1: per-example gradient norms from the hooks, no parameter gradient
        torch.autograd.grad(losses.mean(), anchor, retain_graph=keeper is None)
        if any(p._norm_sample is None for p in trainable):  # type: ignore[attr-defined]
            raise PrivacyError(
                "internal: a trainable layer got no per-example gradient norm; retrain with "
                "--dp-clipping hooks and report this model"
            )
        coefficients = self.hooks.get_clipping_coef()  # (batch,), min(1, C / norm)
        if keeper is not None:  # the clipped sum from the layers' kept inputs and gradients
            keeper.accumulate(coefficients)
            return
        # pass 2: the sum of clipped per-example gradients, hooks off
        self.hooks.disable_hooks()
        try:
            torch.autograd.backward((coefficients * losses).sum(), inputs=trainable)
        finally:
            self.hooks.enable_hooks()

    def _ghost_backward_opacus(self, losses: torch.Tensor) -> None:
        """Opacus's own two full passes, for models whose trainable part has no frozen input."""
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            DPTensorFastGradientClipping(self.hooks, self.optimizer, losses, "mean").backward()

    def _empty_step(self) -> None:
        for p in self.trainable:
            p.grad = torch.zeros_like(p)
            if self.plan.clipping == Clipping.HOOKS.value:
                p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)  # type: ignore[attr-defined]
        self.optimizer.signal_skip_step(do_skip=False)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # -- budget ---------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        return self.accountant.steps

    def epsilon(self) -> float:
        """ε spent so far, at the plan's δ (computed once per step count: PRV takes a while)."""
        if self._epsilon_at[0] != self.steps:
            self._epsilon_at = (self.steps, self.accountant.epsilon(self.plan.delta))
        return self._epsilon_at[1]

    def epsilon_for_display(self, *, every_s: float = 2.0) -> float:
        """ε for the progress bar, recomputed at most every ``every_s`` seconds."""
        if time.monotonic() - self._shown[0] >= every_s:
            self._shown = (time.monotonic(), self.epsilon())
        return self._shown[1]

    # -- checkpoint state (JSON) ----------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the plan, the accountant and the secret random state."""
        noise_state = self.noise_generator.get_state()
        return {
            "plan": asdict(self.plan),
            "accountant": self.accountant.state_dict(),
            "steps": self.steps,
            "epsilon": self.epsilon(),
            "frozen": self.frozen,
            "secret": {
                "seed": str(self.secret_seed),
                "noise_rng": base64.b64encode(noise_state.numpy().tobytes()).decode("ascii"),
            },
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue a checkpoint's accountant and random streams (ε never resets)."""
        if not state or "accountant" not in state:
            raise PrivacyError(
                "the checkpoint has no privacy accountant state (it was not trained with DP); "
                "start a new run without --resume"
            )
        saved = state["plan"]
        for key in ("noise_multiplier", "sample_rate", "max_grad_norm", "train_rows"):
            if not math.isclose(float(saved[key]), float(getattr(self.plan, key)), rel_tol=1e-9):
                raise PrivacyError(
                    f"the checkpoint's DP setting {key}={saved[key]} differs from this run's "
                    f"{getattr(self.plan, key)}; ε cannot be continued. Resume with the same data "
                    "and settings, or start a new run"
                )
        self.accountant.load_state_dict(state["accountant"])
        self.secret_seed = int(state["secret"]["seed"])
        if self._sampler is not None:
            self._sampler.seed = self.secret_seed
        raw = base64.b64decode(state["secret"]["noise_rng"])
        self.noise_generator.set_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))


def manifest_section(
    state: dict[str, Any] | None, redaction: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The manifest's ``privacy`` section from a finished run's state (no secret in it)."""
    if state is None and redaction is None:
        return None
    out: dict[str, Any] = {"dp": state is not None}
    if state is not None:
        plan = state["plan"]
        out.update(
            epsilon=round(float(state["epsilon"]), 4),
            delta=plan["delta"],
            delta_rule=plan["delta_rule"],
            accountant=plan["accountant"],
            noise_multiplier=plan["noise_multiplier"],
            max_grad_norm=plan["max_grad_norm"],
            sample_rate=plan["sample_rate"],
            steps=int(state["steps"]),
            target_epsilon=plan["target_epsilon"],
            planned_steps=plan["planned_steps"],
            logical_batch_size=plan["logical_batch_size"],
            physical_batch_size=plan["physical_batch_size"],
            clipping=plan["clipping"],
            sampling="poisson",
            frozen=state.get("frozen", []),
            train_rows=plan["train_rows"],
            accountant_history=state["accountant"]["history"],
            selection=_SELECTION_NOTE,
        )
    if redaction is not None:
        out["redaction"] = redaction
    return out
