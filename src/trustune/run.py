"""Writing a finished run: model folder, manifest, metrics and report, each atomically.

A run that replaces an existing one (``--overwrite``) is written whole into its staging folder
and swapped in at the end: until then the old run is untouched, and any failure removes the
staging folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from trustune.artifact import (
    MANIFEST,
    atomic_dir,
    discard_staging,
    environment,
    io_error,
    read_metrics,
    swap_in,
    utc_now,
)
from trustune.errors import ArtifactError
from trustune.loaded import LoadedRun
from trustune.loader import loaded_type
from trustune.manifest import FORMAT, FORMAT_VERSION, Manifest, read_manifest
from trustune.records import save_records
from trustune.tasks import task_of_manifest
from trustune.train.loop import TrainedModel
from trustune.version import __version__

__all__ = ["record_evaluation", "write_trained_run"]


def _data_section(trained: TrainedModel) -> dict[str, Any]:
    out = {}
    for name, part in (("train", trained.data.train), ("validation", trained.data.validation)):
        out[name] = {**part.info, "truncated": trained.truncated[name]}
    return out


def write_trained_run(
    run_dir: Path, trained: TrainedModel, *, measure_latency: bool = True
) -> LoadedRun:
    """Save the best model and every record of the run; returns the loaded run (its task's
    object: a ``TextClassifier``, a ``TextRegressor``)."""
    staging = trained.staging
    try:
        classifier = _write_run(staging or run_dir, run_dir, trained, measure_latency)
        if staging is not None:
            swap_in(staging, run_dir)
    except BaseException as e:
        if staging is not None and staging.exists() and run_dir.exists():
            discard_staging(staging)
        cause = io_error(e)
        if cause is None:
            raise
        kept = (
            f"the previous run in {run_dir} is intact"
            if staging is not None
            else "free some space and write it again with --resume"
        )
        raise ArtifactError(
            f"could not write the run {run_dir}: {cause.strerror or cause}; {kept}"
        ) from None
    return classifier


def _write_run(
    work: Path, run_dir: Path, trained: TrainedModel, measure_latency: bool
) -> LoadedRun:
    """Write the run into ``work`` (``run_dir`` itself, or the staging folder replacing it)."""
    task = trained.task
    # e.g. regression: the target statistics folded into the head; LoRA: adapters merged
    finished = task.finish(trained.model)
    if finished is not None:
        trained.model = finished
    with atomic_dir(work / "model") as tmp:
        trained.model.save_pretrained(tmp, safe_serialization=True)
        trained.tokenizer.save_pretrained(tmp)
    state = trained.state
    val = trained.data.validation
    encoded = task.encode_inputs(trained.tokenizer, val, max_length=trained.config.data.max_length)
    pad_id = trained.tokenizer.pad_token_id or 0
    outputs = task.compute_outputs(trained.model, encoded, val.labels, batch_size=64, pad_id=pad_id)
    validation = {"data": {k: val.info.get(k) for k in ("path", "sha256", "rows", "skipped_rows")}}
    validation.update(task.metrics(val.labels, outputs))
    training = {
        "precision": trained.precision.value,
        "attention": trained.attention,
        "device": trained.device,
        "world_size": trained.world_size,
        "steps": state.step,
        "epochs_completed": state.epoch,
        "samples_seen": state.samples_seen,
        "best_step": state.best_step,
        "best_metric": abs(state.best_metric) if state.best_metric is not None else None,
        "selection_metric": trained.selection,
        "selection_data": "validation",
        "stopped_early": trained.stopped_early,
        "wall_time_s": round(state.train_time_s, 3),
        "train_samples_per_s": round(state.samples_seen / max(state.train_time_s, 1e-9), 2),
        # the same without validation and checkpoint writing: the optimisation steps alone
        "loop_time_s": round(state.train_time_s - state.overhead_time_s, 3),
        "loop_samples_per_s": round(
            state.samples_seen / max(state.train_time_s - state.overhead_time_s, 1e-9), 2
        ),
        "history": state.history,
        **{k: v for k, v in state.extra.items() if k not in ("privacy", "redaction")},
    }
    n_params = sum(p.numel() for p in trained.model.parameters())
    record: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task.name,
        "created": utc_now(),
        "trustune_version": __version__,
        "config": trained.config.to_dict(),
        **task.manifest_section(),
        "text_column": trained.data.columns.text,
        "label_column": trained.data.columns.label,
        **({"text_pair_column": pair} if (pair := trained.data.columns.pair) else {}),
        "data": _data_section(trained),
        "model": {
            "source": trained.resolved.source,
            "resolved": trained.resolved.location,
            "architecture": type(trained.model).__name__,
            "parameters": n_params,
            **({"origin": trained.resolved.origin.to_dict()} if trained.resolved.origin else {}),
        },
        "training": training,
        "environment": environment(),
    }
    from trustune.privacy import manifest_section

    privacy = manifest_section(state.extra.get("privacy"), state.extra.get("redaction"))
    if privacy is not None:
        record["privacy"] = privacy
    manifest = Manifest.from_dict(record, source=work / MANIFEST)  # checks what is written
    classifier = loaded_type(task.name)(
        run_dir, model=trained.model, tokenizer=trained.tokenizer, manifest=manifest
    )
    if measure_latency:
        validation["speed"] = classifier.measure_speed(val.texts, pairs=val.pairs)
    metrics = {"validation": validation, "evaluations": {}}
    from trustune.report.sections import forget_run_sections

    forget_run_sections(work)  # explanations, a membership audit: of an overwritten model
    classifier.manifest = save_records(work, manifest, metrics)
    from trustune.train.checkpoint import remove_checkpoints

    remove_checkpoints(work)  # the run is complete: nothing resumes it, best/ duplicates model/
    return classifier


def record_evaluation(run_dir: Path, name: str, result: dict[str, Any]) -> None:
    """Add an evaluation to metrics.json and the manifest, and refresh the report."""
    manifest = read_manifest(run_dir)
    metrics = read_metrics(run_dir)
    metrics.setdefault("evaluations", {})[name] = result
    summary = task_of_manifest(manifest).summary(result)
    recorded = {**manifest.metrics, name: {**summary, "data": result["data"]}}
    save_records(run_dir, dataclasses.replace(manifest, metrics=recorded), metrics)
