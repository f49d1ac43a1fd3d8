"""Fine-tuning: the Accelerate training loop with evaluation, early stopping and checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trustune.artifact import MANIFEST, discard_staging, recover_run, staging_dir
from trustune.config import Precision, RunConfig, SelectionMetric
from trustune.data import TrainingData
from trustune.encoding import encode_texts
from trustune.errors import (
    ArtifactError,
    CheckpointError,
    ConfigError,
    PrivacyError,
    TrainingInterrupted,
)
from trustune.inference import compute_logits
from trustune.models import ResolvedModel, load_classifier, load_tokenizer, resolve_model
from trustune.models.consistency import check_input_fit
from trustune.models.weights import load_weights
from trustune.privacy.engine import (
    PoissonBatchSampler,
    PrivateTraining,
    check_sampler,
    physical_batches,
    plan_privacy,
    private_precision,
)
from trustune.privacy.redact import redact_training_data
from trustune.progress import Progress
from trustune.tasks import Task, prepare_training_data
from trustune.train.batching import LengthGroupedBatchSampler
from trustune.train.checkpoint import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
    save_weights_atomic,
)
from trustune.train.interrupt import StopRequest
from trustune.train.setup import (
    apply_trainable,
    build_optimizer,
    build_scheduler,
    resolve_attention,
    resolve_precision,
)
from trustune.train.sizing import left_to_sizing, sized_config

__all__ = ["TrainedModel", "train_model"]


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


class _Trainer:
    """One fine-tuning run; ``run()`` returns the best model."""

    def __init__(
        self, config: RunConfig, output: Path, progress: Progress, *, staging: Path | None = None
    ) -> None:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState

        self.config, self.output, self.progress = config, output, progress
        self.staging = staging
        self.checkpoints = (staging or output) / "checkpoints"
        tc = config.train
        self.precision = resolve_precision(tc.precision, cuda=torch.cuda.is_available())
        # DP-SGD (privacy/engine.py): fp32, and its own accumulation over physical batches.
        self.private: PrivateTraining | None = None
        if config.privacy.enabled:
            self.precision = private_precision(tc.precision)
        # Accelerate keeps its settings in process-wide singletons: forget the previous run's
        # (precision, accumulation) so several runs can train in one process.
        AcceleratorState._reset_state()
        GradientState._reset_state()
        self.accelerator = Accelerator(
            mixed_precision="bf16" if self.precision is Precision.BF16 else "no",
            gradient_accumulation_steps=1
            if config.privacy.enabled
            else tc.gradient_accumulation_steps,
        )
        if config.privacy.enabled and self.accelerator.num_processes > 1:
            raise PrivacyError(
                "--dp-epsilon trains in one process only (DP with several processes is not "
                "supported yet); run without accelerate launch"
            )

    def load(self) -> None:
        # the model first: a wrong --model is refused before the data are read and sized
        self.resolved = resolve_model(self.config.model.name)
        sizing: list[Any] = []

        def adjust(config: RunConfig, train: Any, task_type: type[Task]) -> RunConfig:
            sized, found = sized_config(
                config, train, classification=task_type.stratified, progress=self.progress
            )
            sizing.append(found)
            return sized

        prepared = prepare_training_data(self.config, adjust=adjust)
        self.config, self.sizing = prepared.config, sizing[0]
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
        self.tokenizer = load_tokenizer(self.resolved)
        self.attention = resolve_attention(cfg.model.attention, cuda=torch.cuda.is_available())
        self.model = load_classifier(
            self.resolved, head=self.task.head(), attn_implementation=self.attention
        )
        check_input_fit(
            self.model, self.tokenizer, max_length=dc.max_length, where=self.resolved.source
        )
        apply_trainable(self.model, cfg.train.trainable)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.train_enc = encode_texts(
            self.tokenizer, self.data.train.texts, max_length=dc.max_length,
            pairs=self.data.train.pairs,
        )  # fmt: skip
        self.val_enc = encode_texts(
            self.tokenizer, self.data.validation.texts, max_length=dc.max_length,
            pairs=self.data.validation.pairs,
        )  # fmt: skip
        if cfg.privacy.enabled:
            plan = plan_privacy(cfg, train_rows=len(self.data.train))
            self.private = PrivateTraining(
                plan, device=self.accelerator.device, criterion=self.task.loss
            )
            self.private.freeze(self.model)

    def _loader(self) -> Any:
        tc = self.config.train
        if self.private is not None:
            return self._private_loader()
        self.sampler: LengthGroupedBatchSampler | PoissonBatchSampler = LengthGroupedBatchSampler(
            self.train_enc.lengths(),
            batch_size=tc.batch_size,
            seed=tc.seed,
            group_by_length=tc.group_by_length,
        )
        encoded, labels, pad = self.train_enc, self.data.train.labels, self.pad_id
        return torch.utils.data.DataLoader(
            _Indices(len(encoded)),
            batch_sampler=self.sampler,
            collate_fn=lambda idx: encoded.batch(idx, pad_id=pad, labels=[labels[i] for i in idx]),
            # Its own generator: a new iterator then draws no number from the global RNG,
            # so dropout after a resume sees the same random stream as an uninterrupted run.
            generator=torch.Generator().manual_seed(tc.seed),
        )

    def _private_loader(self) -> Any:
        """Poisson-sampled batches, each as a list of padded physical batches."""
        assert self.private is not None
        self.sampler = self.private.sampler(self.train_enc.lengths())
        check_sampler(self.sampler)
        encoded, labels, pad = self.train_enc, self.data.train.labels, self.pad_id
        physical = self.private.plan.physical_batch_size
        return torch.utils.data.DataLoader(
            _Indices(len(encoded)),
            batch_sampler=self.sampler,
            collate_fn=lambda idx: physical_batches(
                idx, encoded=encoded, labels=labels, pad_id=pad, physical_batch_size=physical
            ),
            generator=torch.Generator().manual_seed(self.config.train.seed),  # as in _loader
        )

    def _privacy_fields(self, *, live: bool = False) -> dict[str, float]:
        """ε spent so far, for the progress bar (``live``) and the history."""
        if self.private is None:
            return {}
        if live:
            return {"epsilon": self.private.epsilon_for_display()}
        return {"epsilon": round(self.private.epsilon(), 4)}

    def validate(self) -> dict[str, float]:
        model = self.accelerator.unwrap_model(self.model)
        batch = max(64, self.config.train.batch_size * 2)
        with self.accelerator.autocast():
            logits = compute_logits(
                model,
                self.val_enc,
                batch_size=batch,
                pad_id=self.pad_id,
                device=self.accelerator.device,
            )
        model.train()
        return self.task.quick_metrics(np.asarray(self.data.validation.labels), logits)

    def run(self, resume_from: Path | None) -> TrainedModel:
        acc, tc = self.accelerator, self.config.train
        loader = self._loader()
        batches_per_epoch = len(self.sampler)
        steps_per_epoch = -(-batches_per_epoch // acc.gradient_accumulation_steps)
        total_steps = steps_per_epoch * tc.epochs
        optimizer = build_optimizer(self.model, tc)
        scheduler = build_scheduler(
            optimizer, total_steps=total_steps, warmup_ratio=tc.warmup_ratio
        )
        if self.private is not None:
            # the model stays unwrapped: Opacus hooks it, the noisy optimizer wraps AdamW
            self.model = self.model.to(acc.device)
            self.private.attach(self.model, optimizer)
        else:
            self.model, optimizer, loader = acc.prepare(self.model, optimizer, loader)
        state = TrainingState()
        if resume_from is not None:
            state, info = load_checkpoint(
                resume_from,
                model=acc.unwrap_model(self.model),
                optimizer=optimizer,
                scheduler=scheduler,
            )
            if info.get("data") != _fingerprints(self.data):
                error = PrivacyError if self.private is not None else CheckpointError
                why = (
                    "; a DP run's ε is accounted for one fixed training set" if self.private else ""
                )
                raise error(
                    f"the training data changed since checkpoint {resume_from.name} was written; "
                    f"resume needs the same files (or start a new run without --resume){why}"
                )
            if self.private is not None:
                self.private.load_state_dict(state.extra.get("privacy"))
            self.progress.message(
                f"resuming from {resume_from.name} (step {state.step}, epoch {state.epoch + 1})"
            )
        if self.redaction is not None:
            state.extra["redaction"] = self.redaction
        if self.sizing is not None:  # in every checkpoint: a resumed run records it too
            state.extra["sizing"] = self.sizing
        run_info = {"config": self.config.to_dict(), "data": _fingerprints(self.data)}
        stopped_early = False
        self.model.train()
        self.progress.start("train", total=total_steps, completed=state.step)
        started, samples_at_start = time.perf_counter(), state.samples_seen
        since_eval_loss, since_eval_n, since_eval_samples, since_eval_t = (
            0.0,
            0,
            0,
            time.perf_counter(),
        )

        def checkpoint() -> None:
            state.train_time_s += time.perf_counter() - started_segment[0]
            started_segment[0] = time.perf_counter()
            if self.private is not None:
                state.extra["privacy"] = self.private.state_dict()
            if acc.is_main_process:
                save_checkpoint(
                    self.checkpoints,
                    model=acc.unwrap_model(self.model),
                    optimizer=optimizer,
                    scheduler=scheduler,
                    state=state,
                    run_info=run_info,
                    keep=tc.keep_checkpoints,
                )
            acc.wait_for_everyone()

        def evaluate() -> bool:
            nonlocal since_eval_loss, since_eval_n, since_eval_samples, since_eval_t
            overhead_started = time.perf_counter()
            metrics = self.validate()
            elapsed = time.perf_counter() - since_eval_t
            entry = {
                "epoch": round(state.epoch + state.batches_done / max(batches_per_epoch, 1), 3),
                "step": state.step,
                "train_loss": since_eval_loss / max(since_eval_n, 1),
                **{f"val_{name}": value for name, value in metrics.items()},
                "lr": scheduler.get_last_lr()[0], "samples_per_s": since_eval_samples / max(elapsed, 1e-9),
                **self._privacy_fields(),
            }  # fmt: skip
            state.history.append(entry)
            since_eval_loss, since_eval_n, since_eval_samples, since_eval_t = (
                0.0,
                0,
                0,
                time.perf_counter(),
            )
            value = self.task.selection_value(metrics, self.selection)
            main = self.task.headline[0]
            self.progress.message(
                f"step {state.step}: val {main} {metrics[main]:.4f}, val loss {metrics['loss']:.4f}"
            )
            if state.best_metric is None or value > state.best_metric:
                state.best_metric, state.best_step = value, state.step
                state.evaluations_without_improvement = 0
                if acc.is_main_process:
                    best = self.checkpoints / "best" / "model.safetensors"
                    save_weights_atomic(acc.unwrap_model(self.model), best)
            else:
                state.evaluations_without_improvement += 1
            checkpoint()
            state.overhead_time_s += time.perf_counter() - overhead_started
            since_eval_t = time.perf_counter()
            return (
                bool(tc.early_stopping_patience)
                and state.evaluations_without_improvement >= tc.early_stopping_patience
            )

        started_segment = [time.perf_counter()]
        with StopRequest() as stop:
            try:
                while state.epoch < tc.epochs and not stopped_early:
                    self.sampler.position(state.epoch, start_batch=state.batches_done)
                    for batch in loader:
                        if self.private is not None:  # clipped per example, noised
                            loss_value, n = self.private.step(batch)
                        else:
                            with acc.accumulate(self.model):
                                targets = batch.pop("labels")
                                logits = self.model(**batch).logits
                                loss = self.task.loss(logits, targets).mean()
                                acc.backward(loss)
                                if acc.sync_gradients and tc.max_grad_norm:
                                    acc.clip_grad_norm_(self.model.parameters(), tc.max_grad_norm)
                                optimizer.step()
                                optimizer.zero_grad(set_to_none=True)
                            n = int(batch["input_ids"].shape[0]) * acc.num_processes
                            loss_value = float(loss.detach())
                        state.batches_done += 1
                        state.samples_seen += n
                        since_eval_samples += n
                        since_eval_loss += loss_value
                        since_eval_n += 1
                        if acc.sync_gradients:
                            scheduler.step()
                            state.step += 1
                            rate = (state.samples_seen - samples_at_start) / max(
                                time.perf_counter() - started, 1e-9
                            )
                            self.progress.advance(
                                "train",
                                1,
                                loss=loss_value,
                                samples_per_s=rate,
                                epoch=state.epoch + 1,
                                **self._privacy_fields(live=True),
                            )
                            if (
                                tc.evaluate_every
                                and state.step % tc.evaluate_every == 0
                                and evaluate()
                            ):
                                stopped_early = True
                                break
                            if stop.requested:
                                raise KeyboardInterrupt
                    else:
                        state.epoch += 1
                        state.batches_done = 0
                        if not tc.evaluate_every and evaluate():
                            stopped_early = True
            except KeyboardInterrupt:
                if self.staging is not None:  # the staging folder goes; the old run stays
                    self.progress.end("train")
                    raise TrainingInterrupted(
                        f"training stopped at step {state.step}; {self.output} is unchanged "
                        "(--overwrite replaces it only with a complete run). Start again with "
                        "--overwrite"
                    ) from None
                checkpoint()
                self.progress.end("train")
                raise TrainingInterrupted(
                    f"training stopped at step {state.step}; checkpoint saved. Continue with: "
                    f"trustune train --output {self.output} --resume"
                ) from None
        state.train_time_s += time.perf_counter() - started_segment[0]
        if self.private is not None:
            state.extra["privacy"] = self.private.state_dict()
            self.private.detach()
        if (
            tc.evaluate_every
            and not stopped_early
            and (not state.history or state.history[-1]["step"] != state.step)
        ):
            evaluate()
        self.progress.end("train")
        # without Accelerate's autocast wrapper: the run is written and measured in full precision
        model = acc.unwrap_model(self.model, keep_fp32_wrapper=False)
        best = self.checkpoints / "best" / "model.safetensors"
        if best.exists():
            from safetensors.torch import load_file

            load_weights(model, load_file(str(best)), where=str(best))
        model.eval()
        return TrainedModel(
            model=model, tokenizer=self.tokenizer, data=self.data, task=self.task, selection=self.selection, resolved=self.resolved, config=self.config,
            state=state, precision=self.precision, attention=self.attention, device=str(acc.device), world_size=acc.num_processes,
            stopped_early=stopped_early,
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
) -> TrainedModel:
    """Fine-tune per ``config`` with checkpoints under ``output/checkpoints``.

    With ``resume`` the configuration saved in the checkpoint is used; a ``config`` that
    differs from it is refused (the schedule and data order depend on it). With ``overwrite``
    an existing run is not touched: the new one is trained in a hidden sibling folder that
    :func:`trustune.run.write_trained_run` swaps in when complete; any failure removes it.
    """
    resume_from, staging = _prepare_output(output, resume=resume, overwrite=overwrite)
    try:
        return _train(config, output, resume_from, staging, progress or Progress())
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
    trainer = _Trainer(config, output, progress, staging=staging)
    trainer.load()
    return trainer.run(resume_from)
