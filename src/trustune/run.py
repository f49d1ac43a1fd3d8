"""Writing a finished run: model folder, manifest, metrics and report, each atomically.

A run that replaces an existing one (``--overwrite``) is written whole into its staging folder
and swapped in at the end: until then the old run is untouched, and any failure removes the
staging folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trustune import __version__
from trustune.artifact import (
    FORMAT_VERSION,
    MANIFEST,
    METRICS,
    atomic_dir,
    atomic_write_json,
    discard_staging,
    environment,
    hash_files,
    io_error,
    read_manifest,
    read_metrics,
    swap_in,
    utc_now,
)
from trustune.classifier import TextClassifier
from trustune.errors import ArtifactError
from trustune.evaluate import classification_metrics
from trustune.inference import compute_logits, softmax
from trustune.train.batching import encode_texts
from trustune.train.loop import TrainedModel

__all__ = ["record_evaluation", "save_records", "write_trained_run"]


def save_records(run_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write metrics, manifest (with file hashes) and the report; the manifest goes last."""
    from trustune.report import write_report
    from trustune.report.model_card import write_model_card
    from trustune.report.sections import run_sections

    write_model_card(run_dir, manifest, metrics)  # model/README.md, hashed with the model files
    manifest["files"] = hash_files(run_dir)
    atomic_write_json(run_dir / METRICS, metrics)
    sections = run_sections(run_dir)
    if "privacy" in manifest:  # ε, δ, redaction, and the membership audit when there is one
        from trustune.privacy.report import report_section

        sections.append(("Privacy", report_section(manifest, run_dir)))
    write_report(run_dir, manifest, metrics, extra_sections=sections)
    atomic_write_json(run_dir / MANIFEST, manifest)


def _data_section(trained: TrainedModel) -> dict[str, Any]:
    out = {}
    for name, part in (("train", trained.data.train), ("validation", trained.data.validation)):
        out[name] = {**part.info, "truncated": trained.truncated[name]}
    return out


def write_trained_run(
    run_dir: Path, trained: TrainedModel, *, measure_latency: bool = True
) -> TextClassifier:
    """Save the best model and every record of the run; returns the loaded classifier."""
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
) -> TextClassifier:
    """Write the run into ``work`` (``run_dir`` itself, or the staging folder replacing it)."""
    with atomic_dir(work / "model") as tmp:
        trained.model.save_pretrained(tmp, safe_serialization=True)
        trained.tokenizer.save_pretrained(tmp)
    state = trained.state
    labels = list(trained.data.label_map.names)
    val = trained.data.validation
    encoded = encode_texts(trained.tokenizer, val.texts, max_length=trained.config.data.max_length)
    pad_id = trained.tokenizer.pad_token_id or 0
    probs = softmax(compute_logits(trained.model, encoded, batch_size=64, pad_id=pad_id))
    validation = {"data": {k: val.info.get(k) for k in ("path", "sha256", "rows", "skipped_rows")}}
    validation.update(classification_metrics(val.labels, probs, label_names=labels))
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
        "selection_metric": trained.config.train.selection_metric.value,
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
    manifest: dict[str, Any] = {
        "format": "trustune.run",
        "format_version": FORMAT_VERSION,
        "task": "text-classification",
        "created": utc_now(),
        "trustune_version": __version__,
        "config": trained.config.to_dict(),
        "labels": labels,
        "text_column": trained.data.columns.text,
        "label_column": trained.data.columns.label,
        "data": _data_section(trained),
        "model": {
            "source": trained.resolved.source,
            "resolved": trained.resolved.location,
            "architecture": type(trained.model).__name__,
            "parameters": n_params,
        },
        "training": training,
        "environment": environment(),
    }
    from trustune.privacy.engine import manifest_section

    privacy = manifest_section(state.extra.get("privacy"), state.extra.get("redaction"))
    if privacy is not None:
        manifest["privacy"] = privacy
    classifier = TextClassifier(
        run_dir, model=trained.model, tokenizer=trained.tokenizer, manifest=manifest
    )
    if measure_latency:
        validation["speed"] = classifier.measure_speed(val.texts)
    metrics = {"validation": validation, "evaluations": {}}
    from trustune.report.sections import forget_run_sections

    forget_run_sections(work)  # explanations etc. of an overwritten model no longer hold
    (work / "privacy_audit.json").unlink(missing_ok=True)  # so does a membership audit
    save_records(work, manifest, metrics)
    return classifier


def record_evaluation(run_dir: Path, name: str, result: dict[str, Any]) -> None:
    """Add an evaluation to metrics.json and the manifest, and refresh the report."""
    manifest = read_manifest(run_dir)
    metrics = read_metrics(run_dir)
    metrics.setdefault("evaluations", {})[name] = result
    summary = {k: result.get(k) for k in ("accuracy", "f1_macro", "roc_auc", "pr_auc", "ece")}
    manifest.setdefault("metrics", {})[name] = {**summary, "data": result["data"]}
    save_records(run_dir, manifest, metrics)
