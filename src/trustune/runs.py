"""Experiment tracking without a tracker: the runs of a folder in one table, and what differs
between runs (their resolved config, their metrics side by side).

Everything here only reads: each run's ``trustune.json`` (through :func:`_read_run`) and
``metrics.json``. A folder that looks like a run but cannot be read is listed with the reason,
so one damaged run does not hide the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustune.artifact import MANIFEST, read_metrics
from trustune.errors import ArtifactError, ConfigError
from trustune.manifest import Manifest, read_manifest
from trustune.messages import shortened

__all__ = [
    "DEFAULT_FOLDER",
    "Comparison",
    "RunSummary",
    "compare_runs",
    "flatten_config",
    "list_runs",
    "main_metric",
]

DEFAULT_FOLDER = Path("runs")
_DEPTH = 2  # runs/NAME and runs/GROUP/NAME
_CHECKPOINTS = "checkpoints"
_REASON_LIMIT = 160


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One line of `trustune runs list`; ``problem`` says why a run could not be read (the
    fields it could not fill are None)."""

    path: Path
    task: str | None = None
    model: str | None = None
    created: str | None = None
    train_rows: int | None = None
    epochs: int | None = None
    metric: str | None = None  # the task's main metric (its default selection metric)
    value: float | None = None  # on the validation set
    epsilon: float | None = None  # spent, for a differentially private run
    encrypted: bool = False
    signed: bool = False
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "task": self.task, "model": self.model,
            "created": self.created, "train_rows": self.train_rows, "epochs": self.epochs,
            "metric": self.metric, "value": self.value, "epsilon": self.epsilon,
            "encrypted": self.encrypted, "signed": self.signed, "problem": self.problem,
        }  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """What differs between runs, one value per run in the order given.

    ``config``: each dotted config key whose values differ (None where a run's config has no
    such key, which ``missing`` marks). ``validation``: the figures of the validation set;
    ``evaluations``: those of every ``trustune evaluate``, by name (None where a run has none).
    """

    runs: tuple[Path, ...]
    config: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    missing: dict[str, tuple[bool, ...]] = field(default_factory=dict)
    validation: dict[str, tuple[float | None, ...]] = field(default_factory=dict)
    evaluations: dict[str, dict[str, tuple[float | None, ...]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [str(p) for p in self.runs],
            "config": {k: list(v) for k, v in self.config.items()},
            "missing": {k: list(v) for k, v in self.missing.items() if any(v)},
            "validation": {k: list(v) for k, v in self.validation.items()},
            "evaluations": {
                name: {k: list(v) for k, v in figures.items()}
                for name, figures in self.evaluations.items()
            },
        }


def _read_run(run_dir: Path) -> Manifest:
    """The one place this module reads a manifest."""
    return read_manifest(run_dir)


def main_metric(task: str) -> str | None:
    """The main metric of a task (the metric it selects checkpoints on by default), or None
    for a task this trustune does not know."""
    from trustune.tasks import get_task  # the registry imports the task modules (torch)

    try:
        return get_task(task).default_selection
    except ConfigError:
        return None


def _signed(run_dir: Path) -> bool:
    from trustune.security.artifact import SIGNATURE_FILE

    return (run_dir / SIGNATURE_FILE).is_file()


def _reason(error: Exception, run_dir: Path) -> str:
    """An error message without the run's own path (the list shows it already)."""
    text = str(error).replace(str(run_dir / MANIFEST), MANIFEST).replace(str(run_dir), "the run")
    return shortened(text, limit=_REASON_LIMIT)


def _found_runs(folder: Path, depth: int) -> Iterable[Path]:
    """Folders below ``folder`` (down to ``depth`` levels) that hold a manifest, or the
    checkpoints of a run still training or interrupted; hidden folders (an interrupted
    write's staging copy) are skipped."""
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        if (child / MANIFEST).exists() or (child / _CHECKPOINTS).is_dir():
            yield child
        elif depth > 1:
            yield from _found_runs(child, depth - 1)


def _summary(run_dir: Path, metric_of: dict[str, str | None]) -> RunSummary:
    if not (run_dir / MANIFEST).exists():
        return RunSummary(
            path=run_dir,
            problem=f"unfinished: no {MANIFEST} yet; continue it with `trustune train --output "
            f"{run_dir} --resume`",
        )
    try:
        manifest = _read_run(run_dir)
    except ArtifactError as e:
        return RunSummary(path=run_dir, problem=_reason(e, run_dir))
    if manifest.task not in metric_of:
        metric_of[manifest.task] = main_metric(manifest.task)
    metric = metric_of[manifest.task]
    train = manifest.data.train
    privacy = manifest.privacy
    found: dict[str, Any] = {
        "path": run_dir, "task": manifest.task, "model": manifest.model.source,
        "created": manifest.created, "train_rows": train.rows if train else None,
        "epochs": manifest.training.epochs_completed, "metric": metric,
        "epsilon": privacy.epsilon if privacy is not None and privacy.dp else None,
        "encrypted": manifest.encrypted, "signed": _signed(run_dir),
    }  # fmt: skip
    try:
        validation = read_metrics(run_dir).get("validation")
    except ArtifactError as e:
        return RunSummary(**found, problem=_reason(e, run_dir))
    if metric is not None and isinstance(validation, Mapping):
        found["value"] = _number(validation.get(metric))
    return RunSummary(**found)


def list_runs(folder: str | Path = DEFAULT_FOLDER) -> list[RunSummary]:
    """Every run in ``folder`` (``runs/NAME`` or ``runs/GROUP/NAME``; ``folder`` itself when it
    is a run), sorted by path; a run that cannot be read is listed with the reason."""
    folder = Path(folder)
    if not folder.exists():
        raise ArtifactError(
            f"no folder {folder}; pass the folder that holds the runs (default {DEFAULT_FOLDER}/)"
        )
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is a file, not a folder of runs; pass a folder")
    metric_of: dict[str, str | None] = {}
    if (folder / MANIFEST).exists():
        return [_summary(folder, metric_of)]
    return [_summary(run, metric_of) for run in _found_runs(folder, _DEPTH)]


# -- comparing runs -----------------------------------------------------------------------------


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.001}}`` as ``{"train.lr": 0.001}``: nested objects become dotted
    keys, every other value (lists included) stays as it is."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_config(value, f"{name}."))
        else:
            out[name] = value
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _figures(result: Any) -> dict[str, float]:
    """The numbers at the top of an evaluation (per-class tables, curves and the data's
    fingerprint are left out)."""
    if not isinstance(result, Mapping):
        return {}
    return {k: v for k, value in result.items() if (v := _number(value)) is not None}


def _side_by_side(
    per_run: Sequence[Mapping[str, float]],
) -> dict[str, tuple[float | None, ...]]:
    keys = dict.fromkeys(k for figures in per_run for k in figures)  # first seen first
    return {k: tuple(figures.get(k) for figures in per_run) for k in keys}


def compare_runs(paths: Sequence[str | Path]) -> Comparison:
    """The config keys whose values differ between the runs, and their metrics side by side;
    a path that is not a run is an :class:`~trustune.errors.ArtifactError`."""
    runs = tuple(Path(p) for p in paths)
    if len(runs) < 2:
        raise ConfigError(f"compare needs at least two runs, got {len(runs)}; name two or more")
    manifests = [_read_run(run) for run in runs]
    metrics = [read_metrics(run) for run in runs]
    configs = [flatten_config(m.config) for m in manifests]
    keys = dict.fromkeys(k for config in configs for k in config)
    differ: dict[str, tuple[Any, ...]] = {}
    missing: dict[str, tuple[bool, ...]] = {}
    for key in keys:
        absent = tuple(key not in config for config in configs)
        values = tuple(config.get(key) for config in configs)
        if any(absent) or any(v != values[0] for v in values[1:]):
            differ[key] = values
            missing[key] = absent
    evaluations = [_mapping(m.get("evaluations")) for m in metrics]
    names = dict.fromkeys(name for found in evaluations for name in found)
    return Comparison(
        runs=runs, config=differ, missing=missing,
        validation=_side_by_side([_figures(m.get("validation")) for m in metrics]),
        evaluations={
            name: _side_by_side([_figures(found.get(name)) for found in evaluations])
            for name in names
        },
    )  # fmt: skip
