"""Fine-tuning: the Accelerate training loop with evaluation, early stopping and checkpoints.

The loop runs epochs of micro-batches through a step strategy (``step.py``: the plain step, or
DP-SGD from ``trustune.privacy``), validates (``validation.py``), keeps checkpoints
(``checkpoint_policy.py``) and tells its observers (``observer.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trustune.artifact import MANIFEST, discard_staging, recover_run, staging_dir
from trustune.config import Precision, RunConfig, SelectionMetric
from trustune.data import TrainingData
from trustune.errors import ArtifactError, CheckpointError, ConfigError, TrainingInterrupted
from trustune.models import ResolvedModel, resolve_model
from trustune.models.consistency import check_input_fit
from trustune.models.pooler import init_pooler
from trustune.privacy import redact_training_data
from trustune.progress import Progress
from trustune.tasks import Task, prepare_training_data, with_task_defaults
from trustune.train.checkpoint import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint_info,
)
from trustune.train.checkpoint_policy import CheckpointPolicy
from trustune.train.interrupt import StopRequest
from trustune.train.observer import LoopObserver, Observers
from trustune.train.setup import (
    apply_trainable,
    build_optimizer,
    build_scheduler,
    resolve_attention,
    resolve_precision,
)
from trustune.train.sizing import left_to_sizing, sized_config
from trustune.train.step import StepFactory, step_for
from trustune.train.validation import EarlyStopping, Validator

__all__ = ["TrainedModel", "train_model"]

_EARLY_STOPPING = "early stopping"


@dataclass
class TrainedModel:
    """What the loop hands to the run writer."""

    model: Any  # a transformers PreTrainedModel
    tokenizer: Any
    data: TrainingData
    task: Task
    selection: str  # the validation metric the best checkpoint was chosen by
    resolved: ResolvedModel
    config: RunConfig
    state: TrainingState
    precision: Precision
    attention: str
    device: str
    world_size: int
    stopped_early: bool
    truncated: dict[str, int]
    # --overwrite of an existing run: the hidden sibling the new run is built in, swapped in
    # by the run writer once complete (the old run stays whole until then)
    staging: Path | None = None


class _Indices(torch.utils.data.Dataset[int]):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def _is_run(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or (folder / "checkpoints").is_dir()


def _prepare_output(
    output: Path, *, resume: bool, overwrite: bool
) -> tuple[Path | None, Path | None]:
    """Check the output folder; returns the checkpoint to resume from and, to replace an
    existing run, the staging folder to train in."""
    recover_run(output)
    checkpoints = output / "checkpoints"
    if resume:
        found = latest_checkpoint(checkpoints)
        if found is None and (output / MANIFEST).is_file():
            raise CheckpointError(
                f"{output} is a finished run (its checkpoints were removed when it was written); "
                "train a new run or pass --overwrite"
            )
        if found is None:
            raise CheckpointError(
                f"no checkpoint to resume in {checkpoints}; start without --resume"
            )
        return found, None
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        if not overwrite:
            raise ArtifactError(
                f"{output} already exists; pass --overwrite to replace it (the current run stays "
                "intact until the new one is complete) or --resume to continue its training"
            )
        if not output.is_dir() or not _is_run(output):
            raise ArtifactError(
                f"{output} is not a trustune run (no {MANIFEST}, no checkpoints/); --overwrite "
                "replaces runs only. Choose another --output"
            )
        return None, staging_dir(output)
    return None, None


def _fingerprints(data: TrainingData) -> dict[str, Any]:
    return {
        name: {"sha256": part.info["sha256"], "rows": part.info["rows"]}
        for name, part in (("train", data.train), ("validation", data.validation))
    }


def _selection_metric(task: Task, metric: SelectionMetric) -> str:
    """The validation metric to select on: ``auto`` is the task's own; others must be the task's."""
    if metric is SelectionMetric.AUTO:
        return task.default_selection
    if metric.value not in task.selection_metrics:
        raise ConfigError(
            f"--selection-metric {metric.value} is not a metric of {task.name}; choose between "
            f"{list(task.selection_metrics)} (or auto)"
        )
    return metric.value


class _Window:
    """Training figures since the last validation: its history entry's loss and speed."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.loss, self.batches, self.samples = 0.0, 0, 0
        self.started = time.perf_counter()

    def add(self, loss: float, examples: int) -> None:
        self.loss += loss
        self.batches += 1
        self.samples += examples


class _Trainer:
    """One fine-tuning run; ``run()`` returns the best model."""

    def __init__(
        self,
        config: RunConfig,
        output: Path,
        progress: Progress,
        *,
        staging: Path | None = None,
        step: StepFactory = step_for,
        observers: Sequence[LoopObserver] = (),
    ) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState

        self.config, self.output, self.progress = config, output, progress
        self.staging = staging
        self.checkpoints = (staging or output) / "checkpoints"
        self.observers = Observers(observers)
        self.strategy = step(config)
        resolved = resolve_precision(config.train.precision, cuda=torch.cuda.is_available())
        self.precision = self.strategy.precision(resolved)  # DP: fp32 only
        # Accelerate keeps its settings in process-wide singletons: forget the previous run's
        # (precision, accumulation) so several runs can train in one process.
        AcceleratorState._reset_state()
        GradientState._reset_state()
        self.accelerator = Accelerator(
            mixed_precision="bf16" if self.precision is Precision.BF16 else "no",
            gradient_accumulation_steps=self.strategy.accumulation_steps,
        )
        self.strategy.check_processes(self.accelerator.num_processes)

    def load(self) -> None:
        # the model first: a wrong --model is refused before the data are read and sized (with
        # the defaults of the task the file is for: a chat file starts from the chat model)
        self.config = with_task_defaults(self.config)
        self.resolved = resolve_model(self.config.model.name, progress=self.progress)
        sizing: list[Any] = []

        def adjust(config: RunConfig, train: Any, task_type: type[Task]) -> RunConfig:
            if not task_type.sized_by_data:
                return config
            sized, found = sized_config(
                config, train, classification=task_type.stratified, progress=self.progress
            )
            sizing.append(found)
            return sized

        prepared = prepare_training_data(self.config, adjust=adjust)
        self.config, self.sizing = prepared.config, (sizing[0] if sizing else None)
        self.data, self.task = prepared.data, prepared.task
        cfg, dc = self.config, self.config.data
        self.selection = _selection_metric(self.task, cfg.train.selection_metric)
        for note in prepared.notes:
            self.progress.message(note)
        self.redaction: dict[str, Any] | None = None
        if cfg.privacy.redact_pii:
            self.redaction = redact_training_data(self.data)
            found: dict[str, int] = self.redaction["train"]["counts"]
            self.progress.message(
                "redacted in the training texts: "
                + (", ".join(f"{n} {kind}" for kind, n in found.items() if n) or "nothing found")
            )
        self.tokenizer = self.task.load_tokenizer(self.resolved)
        self.attention = resolve_attention(cfg.model.attention, cuda=torch.cuda.is_available())
        self.model = self.task.load_model(self.resolved, attn_implementation=self.attention)
        init_pooler(self.model, cfg.model.pooler)
        positions = getattr(self.model.config, "max_position_embeddings", None)
        # a default context longer than the model reads: the model's own
        if (
            "data.max_length" not in cfg.explicit
            and isinstance(positions, int)
            and dc.max_length > positions
        ):
            self.config = cfg = dataclasses.replace(
                cfg, data=dataclasses.replace(dc, max_length=positions)
            )
            dc = cfg.data
        check_input_fit(
            self.model, self.tokenizer, max_length=dc.max_length, where=self.resolved.source
        )
        apply_trainable(self.model, cfg.train.trainable)
        self.pad_id = self.tokenizer.pad_token_id or 0
        task = self.task
        self.train_enc = task.encode_inputs(
            self.tokenizer, self.data.train, max_length=dc.max_length
        )
        self.val_enc = task.encode_inputs(
            self.tokenizer, self.data.validation, max_length=dc.max_length
        )
        self.strategy.setup(
            config=cfg, model=self.model, encoded=self.train_enc, targets=self.data.train.labels,
            pad_id=self.pad_id, criterion=self.task.loss, device=self.accelerator.device,
        )  # fmt: skip

    def run(self, resume_from: Path | None) -> TrainedModel:
        self._prepare(resume_from)
        # the configuration as resolved (sized defaults filled in), as the manifest records it
        self.observers.start(self.config.to_dict(), self.staging or self.output)
        with StopRequest() as stop:
            try:
                while self.state.epoch < self.config.train.epochs and self.stopped is None:
                    self._epoch(stop)
            except KeyboardInterrupt:
                raise self._interrupted() from None
        self._finish()
        return self._result()

    # -- before the first step ------------------------------------------------------------

    def _prepare(self, resume_from: Path | None) -> None:
        acc, tc = self.accelerator, self.config.train
        self.order = self.strategy.batch_order()
        loader = torch.utils.data.DataLoader(
            _Indices(len(self.train_enc)),
            batch_sampler=self.order,
            collate_fn=self.strategy.collate,
            # Its own generator: a new iterator then draws no number from the global RNG,
            # so dropout after a resume sees the same random stream as an uninterrupted run.
            generator=torch.Generator().manual_seed(tc.seed),
        )
        self.batches_per_epoch = len(self.order)
        steps_per_epoch = -(-self.batches_per_epoch // acc.gradient_accumulation_steps)
        total_steps = steps_per_epoch * tc.epochs
        optimizer = build_optimizer(self.model, tc)
        self.scheduler = build_scheduler(
            optimizer, total_steps=total_steps, warmup_ratio=tc.warmup_ratio
        )
        self.model, optimizer, self.loader = self.strategy.prepare(
            acc, self.model, optimizer, loader
        )
        self.saving = CheckpointPolicy(
            self.checkpoints, accelerator=acc, optimizer=optimizer, scheduler=self.scheduler,
            run_info={"config": self.config.to_dict(), "data": _fingerprints(self.data)},
            keep=tc.keep_checkpoints,
        )  # fmt: skip
        self.state = TrainingState() if resume_from is None else self._resume(resume_from)
        if self.redaction is not None:
            self.state.extra["redaction"] = self.redaction
        if self.sizing is not None:  # in every checkpoint: a resumed run records it too
            self.state.extra["sizing"] = self.sizing
        self.validator = Validator(
            accelerator=acc, task=self.task, encoded=self.val_enc,
            targets=self.data.validation.labels, pad_id=self.pad_id,
            batch_size=max(64, tc.batch_size * 2),
        )  # fmt: skip
        self.early_stopping = EarlyStopping(
            self.task, selection=self.selection, patience=tc.early_stopping_patience
        )
        self.stopped: str | None = None  # why training ended before its last epoch
        self.model.train()
        self.progress.start("train", total=total_steps, completed=self.state.step)
        self.started, self.samples_at_start = time.perf_counter(), self.state.samples_seen
        self.window = _Window()
        self.segment_started = time.perf_counter()  # train_time_s is added up per checkpoint

    def _resume(self, checkpoint: Path) -> TrainingState:
        state, info = load_checkpoint(
            checkpoint,
            model=self.accelerator.unwrap_model(self.model),
            optimizer=self.saving.optimizer,
            scheduler=self.scheduler,
        )
        if info.get("data") != _fingerprints(self.data):
            raise self.strategy.changed_data_error(
                f"the training data changed since checkpoint {checkpoint.name} was written; "
                "resume needs the same files (or start a new run without --resume)"
            )
        self.strategy.load_state_dict(state.extra)
        self.progress.message(
            f"resuming from {checkpoint.name} (step {state.step}, epoch {state.epoch + 1})"
        )
        return state

    # -- training -------------------------------------------------------------------------

    def _epoch(self, stop: StopRequest) -> None:
        """The rest of the current epoch; validation within it or at its end."""
        state, tc = self.state, self.config.train
        self.order.position(state.epoch, start_batch=state.batches_done)
        for batch in self.loader:
            loss, examples = self.strategy.step(batch)
            state.batches_done += 1
            state.samples_seen += examples
            self.window.add(loss, examples)
            if not self.strategy.optimizer_stepped:
                continue
            self._stepped(loss)
            if self.stopped is None and tc.evaluate_every and state.step % tc.evaluate_every == 0:
                self.stopped = self._validate()
            if self.stopped is not None:
                return
            if stop.requested:
                raise KeyboardInterrupt
        state.epoch += 1
        state.batches_done = 0
        if not tc.evaluate_every:
            self.stopped = self._validate()

    def _stepped(self, loss: float) -> None:
        """An optimizer step is complete: the schedule, the count, the progress figures."""
        state = self.state
        self.scheduler.step()
        state.step += 1
        rate = (state.samples_seen - self.samples_at_start) / max(
            time.perf_counter() - self.started, 1e-9
        )
        fields: dict[str, Any] = {
            "loss": loss, "samples_per_s": rate, "epoch": state.epoch + 1,
            **self.strategy.progress_fields(live=True),
        }  # fmt: skip
        self.progress.advance("train", 1, **fields)
        reason = self.observers.log(state.step, {**fields, "lr": self.scheduler.get_last_lr()[0]})
        if reason is not None:
            self.progress.message(f"step {state.step}: training stopped ({reason})")
            self.stopped = reason

    def _validate(self) -> str | None:
        """Validate, record, keep the best weights and a checkpoint; returns why training
        should stop now (early stopping, an observer), or None."""
        state, window = self.state, self.window
        overhead_started = time.perf_counter()
        metrics = self.validator(self.model)
        elapsed = time.perf_counter() - window.started
        epoch = round(state.epoch + state.batches_done / max(self.batches_per_epoch, 1), 3)
        state.history.append({
            "epoch": epoch, "step": state.step, "train_loss": window.loss / max(window.batches, 1),
            **{f"val_{name}": value for name, value in metrics.items()},
            "lr": self.scheduler.get_last_lr()[0], "samples_per_s": window.samples / max(elapsed, 1e-9),
            **self.strategy.progress_fields(live=False),
        })  # fmt: skip
        window.restart()
        main = self.task.headline[0]
        self.progress.message(
            f"step {state.step}: val {main} {metrics[main]:.4f}, "
            + (
                f"val loss {metrics['loss']:.4f}"
                if main != "loss"
                else f"val perplexity {metrics.get('perplexity', float('nan')):.2f}"
            )
        )
        if self.early_stopping.update(state, metrics):
            self.saving.save_best(self.model)
        self._checkpoint()
        reason = _EARLY_STOPPING if self.early_stopping.exhausted(state) else None
        asked = self.observers.validation(state.step, epoch, metrics)
        if reason is None and asked is not None:
            self.progress.message(f"step {state.step}: training stopped ({asked})")
            reason = asked
        state.overhead_time_s += time.perf_counter() - overhead_started
        window.started = time.perf_counter()
        return reason

    def _checkpoint(self) -> None:
        now = time.perf_counter()
        self.state.train_time_s += now - self.segment_started
        self.segment_started = now
        self.state.extra.update(self.strategy.state_dict())
        self.saving.save(self.model, self.state)

    def _interrupted(self) -> TrainingInterrupted:
        """Ctrl-C: a checkpoint to resume from (or, replacing a run, none: the old one stays)."""
        step = self.state.step
        if self.staging is not None:  # the staging folder goes; the old run stays
            self.progress.end("train")
            return TrainingInterrupted(
                f"training stopped at step {step}; {self.output} is unchanged (--overwrite "
                "replaces it only with a complete run). Start again with --overwrite"
            )
        self._checkpoint()
        self.progress.end("train")
        return TrainingInterrupted(
            f"training stopped at step {step}; checkpoint saved. Continue with: "
            f"trustune train --output {self.output} --resume"
        )

    # -- after the last step --------------------------------------------------------------

    def _finish(self) -> None:
        state = self.state
        state.train_time_s += time.perf_counter() - self.segment_started
        self.segment_started = time.perf_counter()
        state.extra.update(self.strategy.state_dict())
        self.strategy.finish()
        # the last steps since a validation (--evaluate-every, a stop asked at a logging step)
        # are validated too; after early stopping the last validation is the current step
        if self.stopped != _EARLY_STOPPING and (
            not state.history or state.history[-1]["step"] != state.step
        ):
            self._validate()
        self.progress.end("train")

    def _result(self) -> TrainedModel:
        acc = self.accelerator
        # without Accelerate's autocast wrapper: the run is written and measured in full precision
        model = acc.unwrap_model(self.model, keep_fp32_wrapper=False)
        self.saving.restore_best(model)
        model.eval()
        return TrainedModel(
            model=model, tokenizer=self.tokenizer, data=self.data, task=self.task, selection=self.selection, resolved=self.resolved, config=self.config,
            state=self.state, precision=self.precision, attention=self.attention, device=str(acc.device), world_size=acc.num_processes,
            stopped_early=self.stopped is not None,
            truncated={"train": self.train_enc.truncated, "validation": self.val_enc.truncated},
            staging=self.staging,
        )  # fmt: skip


def _changed_keys(saved: RunConfig, given: RunConfig) -> list[str]:
    a, b = saved.to_dict(), given.to_dict()
    return [f"{s}.{k}" for s in a for k in a[s] if a[s][k] != b[s][k]]


def train_model(
    config: RunConfig | None,
    output: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    observers: Sequence[LoopObserver] = (),
    step: StepFactory = step_for,
) -> TrainedModel:
    """Fine-tune per ``config`` with checkpoints under ``output/checkpoints``.

    With ``resume`` the configuration saved in the checkpoint is used; a ``config`` that
    differs from it is refused (the schedule and data order depend on it). With ``overwrite``
    an existing run is not touched: the new one is trained in a hidden sibling folder that
    :func:`trustune.run.write_trained_run` swaps in when complete; any failure removes it.
    ``observers`` see every logging step and validation and may stop training
    (:mod:`trustune.train.observer`); ``step`` builds the step strategy from the run's
    configuration (default: :func:`~trustune.train.step.step_for`, plain or DP-SGD).
    """
    resume_from, staging = _prepare_output(output, resume=resume, overwrite=overwrite)
    try:
        return _train(
            config, output, resume_from, staging, progress or Progress(),
            observers=observers, step=step,
        )  # fmt: skip
    except BaseException:
        if staging is not None:
            discard_staging(staging)
        raise


def _train(
    config: RunConfig | None,
    output: Path,
    resume_from: Path | None,
    staging: Path | None,
    progress: Progress,
    *,
    observers: Sequence[LoopObserver],
    step: StepFactory,
) -> TrainedModel:
    if resume_from is not None:
        saved = read_checkpoint_info(resume_from)
        saved_config = RunConfig.from_dict(saved["config"], source=f"checkpoint {resume_from}")
        changed = _changed_keys(saved_config, config) if config is not None else []
        changed = [k for k in changed if k not in left_to_sizing(config, resume_from)]
        if changed:
            raise ConfigError(
                f"--resume continues the configuration saved in {resume_from.name}; "
                f"these differ from it: {changed}. Drop them, or start a new run"
            )
        config = saved_config
    if config is None:
        raise ConfigError("no configuration given: pass --data FILE (or --resume)")
    from accelerate.utils import set_seed

    set_seed(config.train.seed)
    trainer = _Trainer(config, output, progress, staging=staging, step=step, observers=observers)
    trainer.load()
    return trainer.run(resume_from)
