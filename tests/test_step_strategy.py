"""The loop's parts: step strategies (plain, DP-SGD, one of the caller's), observers that watch
and stop training, and the units the loop is made of."""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("opacus")

import trustune
from trustune.config import RunConfig
from trustune.encoding import Encoded
from trustune.errors import StopTraining, TrustuneError
from trustune.privacy import PrivateStep
from trustune.train.loop import TrainedModel, train_model
from trustune.train.step import PlainStep, StepStrategy, step_for

_IDS = [[1, *range(10, 10 + n), 2] for n in (3, 7, 5, 9, 4, 6, 8, 2, 5, 7, 3, 6)]
_LABELS = [0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 1, 2]
_STEPS = [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11], [1, 3, 5, 7, 9, 11]]


@pytest.mark.parametrize(
    "module",
    ["trustune.train.step", "trustune.train.observer", "trustune.train.validation",
     "trustune.train.checkpoint_policy", "trustune.privacy"],
)  # fmt: skip
def test_every_public_name_exists(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)


def _tiny_bert() -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, num_labels=3, attn_implementation="eager",
        )  # fmt: skip
        return BertForSequenceClassification(config)


def _accelerator() -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(gradient_accumulation_steps=1)


def _steps_of(strategy: StepStrategy, base: Any, config: RunConfig) -> tuple[Any, list[float]]:
    """The strategy's own lifecycle on a copy of ``base``: a few SGD steps on fixed batches."""
    accelerator = _accelerator()
    model = copy.deepcopy(base).train()
    strategy.setup(
        config=config, model=model, encoded=Encoded(input_ids=_IDS, truncated=0),
        targets=_LABELS, pad_id=0, criterion=lambda logits, y: torch.nn.functional.cross_entropy(
            logits.float(), y, reduction="none"), device=accelerator.device,
    )  # fmt: skip
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model, _, _ = strategy.prepare(accelerator, model, optimizer, None)
    losses = []
    for indices in _STEPS:
        loss, examples = strategy.step(strategy.collate(indices))
        assert examples == len(indices) and strategy.optimizer_stepped
        losses.append(loss)
    strategy.finish()
    return accelerator.unwrap_model(model), losses


def test_dp_step_without_noise_or_clipping_equals_the_plain_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trustune.privacy.engine import PrivacyPlan

    plan = PrivacyPlan(
        target_epsilon=8, delta=1e-5, delta_rule="given", accountant="rdp", clipping="ghost",
        max_grad_norm=1e6, noise_multiplier=0.0, sample_rate=0.5, logical_batch_size=6,
        physical_batch_size=4, steps_per_epoch=2, planned_steps=6, train_rows=12,
        freeze_embeddings=False,
    )  # fmt: skip
    monkeypatch.setattr("trustune.privacy.step.plan_privacy", lambda config, train_rows: plan)
    config = RunConfig.from_dict({"train": {"max_grad_norm": 1e6}, "privacy": {"epsilon": 8}})
    base = _tiny_bert()
    private_step = step_for(config)
    assert isinstance(private_step, PrivateStep)
    private, private_losses = _steps_of(private_step, base, config)
    plain, plain_losses = _steps_of(PlainStep(config), base, config)
    assert private_losses == pytest.approx(plain_losses, abs=1e-6)
    pairs = list(zip(private.parameters(), plain.parameters(), strict=True))
    assert max((p - q).abs().max().item() for p, q in pairs) < 1e-6
    moved = zip(private.parameters(), base.parameters(), strict=True)
    assert max((p - q).abs().max().item() for p, q in moved) > 1e-3  # the steps did train
    assert private_step.state_dict()["privacy"]["steps"] == len(_STEPS)  # each step accounted
    assert not hasattr(private, "autograd_grad_sample_hooks")  # finish: a plain model again


# -- the loop with the caller's parts ----------------------------------------------------------


def _config(data: Path, model: Path, **train: Any) -> RunConfig:
    return RunConfig.from_dict({
        "data": {"train_file": str(data)}, "model": {"name": str(model)},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, **train},
    })  # fmt: skip


class _CountingStep(PlainStep):
    """The plain step, counting what the loop asks of it."""

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.calls: dict[str, int] = {"setup": 0, "step": 0, "finish": 0}

    def setup(self, **parts: Any) -> None:
        self.calls["setup"] += 1
        super().setup(**parts)

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
        self.calls["step"] += 1
        return super().step(batch)

    def finish(self) -> None:
        self.calls["finish"] += 1


def test_a_custom_step_strategy_is_the_one_the_loop_uses(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    built: list[_CountingStep] = []

    def counting(config: RunConfig) -> StepStrategy:
        built.append(_CountingStep(config))
        return built[-1]

    config = _config(demo_files[0], tiny_model, gradient_accumulation_steps=2)
    trained = train_model(config, tmp_path / "run", step=counting)
    assert len(built) == 1
    (strategy,) = built
    assert strategy.calls["setup"] == 1 and strategy.calls["finish"] == 1
    rows, batch_size = len(trained.data.train), trained.config.train.batch_size
    micro_batches = -(-rows // batch_size)
    assert strategy.calls["step"] == 2 * micro_batches  # every micro-batch of both epochs
    assert trained.state.samples_seen == 2 * rows
    assert trained.state.step == 2 * -(-micro_batches // 2)  # two micro-batches per step


class _Recorder:
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict[str, Any]]] = []
        self.validated: list[tuple[int, float, dict[str, float]]] = []

    def on_log(self, step: int, fields: dict[str, Any]) -> None:
        self.logged.append((step, fields))

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        self.validated.append((step, epoch, metrics))


class _StopAtValidation(_Recorder):
    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        super().on_validation(step, epoch, metrics)
        raise StopTraining("pruned: the trial is hopeless")


def _history_steps(trained: TrainedModel) -> list[int]:
    return [entry["step"] for entry in trained.state.history]


def test_observers_see_logs_and_validations_and_can_stop_at_a_validation(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    stopper, recorder = _StopAtValidation(), _Recorder()
    config = _config(demo_files[0], tiny_model, evaluate_every=3, early_stopping_patience=0)
    trained = train_model(config, tmp_path / "run", observers=[stopper, recorder])
    assert issubclass(StopTraining, TrustuneError)
    assert trained.stopped_early and trained.state.step == 3
    assert _history_steps(trained) == [3]  # no validation after the stop: it was at this step
    # the observer after the one that stopped still saw the validation
    assert [(s, e) for s, e, _ in recorder.validated] == [(3, trained.state.history[0]["epoch"])]
    _, _, metrics = recorder.validated[0]
    assert metrics["loss"] == trained.state.history[0]["val_loss"]
    assert metrics["accuracy"] == trained.state.history[0]["val_accuracy"]
    assert [s for s, _ in recorder.logged] == [1, 2, 3]
    assert {"loss", "lr", "epoch", "samples_per_s"} <= set(recorder.logged[0][1])
    assert recorder.logged[0][1]["lr"] > 0


class _StopAtStep:
    def __init__(self, at: int) -> None:
        self.at = at

    def on_log(self, step: int, fields: dict[str, Any]) -> None:
        if step == self.at:
            raise StopTraining(f"enough at step {step}")

    def on_validation(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        return None


def test_a_stop_at_a_logging_step_validates_that_step_and_writes_the_run(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    class Messages(trustune.Progress):
        def __init__(self) -> None:
            self.lines: list[str] = []

        def message(self, text: str) -> None:
            self.lines.append(text)

    progress = Messages()
    run = trustune.finetune(
        demo_files[0], model=str(tiny_model), output=tmp_path / "run", epochs=3, batch_size=16,
        lr=1e-3, measure_latency=False, progress=progress, observers=[_StopAtStep(4)],
    )  # fmt: skip
    manifest = json.loads((run.path / "trustune.json").read_text(encoding="utf-8"))
    training = manifest["training"]
    assert training["stopped_early"] is True
    assert training["steps"] == 4  # per-epoch validation, yet the stop's step is validated
    assert [h["step"] for h in training["history"]] == [4]
    assert "step 4: training stopped (enough at step 4)" in progress.lines
    trustune.load(run.path).predict(["my card was charged twice"])
