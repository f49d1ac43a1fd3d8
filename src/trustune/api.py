"""The front door: ``trustune.finetune`` and ``trustune.load``."""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from markupsafe import escape

from trustune.config import RunConfig, config_flags, load_config
from trustune.errors import ConfigError, DataError
from trustune.loaded import LoadedRun
from trustune.loader import load as _load
from trustune.manifest import PrivacyRecord
from trustune.progress import Progress

if TYPE_CHECKING:
    import pandas as pd

    from trustune.train.observer import LoopObserver

# A file path, or labeled rows in memory
DataSource: TypeAlias = (
    "str | Path | pd.DataFrame | Sequence[Mapping[str, Any]] | Sequence[tuple[Any, Any]]"
)

__all__ = ["Run", "finetune", "load", "option_names", "run_config"]

# finetune's own arguments for these config fields (the rest are keywords named like the CLI flags)
_NAMED = {
    "data.train_file", "data.validation_file", "data.text_column", "data.label_column",
    "data.max_length", "data.skip_bad_rows", "model.name",
}  # fmt: skip
_HEADLINE = (
    "accuracy", "f1_macro", "f1_weighted", "roc_auc", "pr_auc", "ece",
    "spearman", "pearson", "mse", "mae", "r2", "loss",
)  # fmt: skip


def _options() -> dict[str, tuple[str, str]]:
    """Keyword -> (section, field) for every config field: the CLI flag's name (``--dp-epsilon``
    is ``dp_epsilon``), or the field's name (``epochs``) when the flag has no name of its own."""
    return {
        flag.removeprefix("--").replace("-", "_"): (section, f.name)
        for flag, section, f in config_flags()
        if f"{section}.{f.name}" not in _NAMED
    }


def option_names() -> list[str]:
    """The keyword options ``finetune`` takes besides its named arguments."""
    return sorted(_options())


def run_config(
    config: RunConfig | str | Path | None = None,
    *,
    data: str | Path | None = None,
    validation: str | Path | None = None,
    model: str | None = None,
    **options: Any,
) -> RunConfig:
    """The configuration ``finetune`` would train from these arguments (files only; for
    ``trustune.tune``, whose study keeps the configuration)."""
    known = _options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}. Allowed: {sorted(known)}")
    base = load_config(config) if isinstance(config, str | Path) else (config or RunConfig())
    overrides: dict[str, dict[str, Any]] = {"data": {}, "model": {}}
    if data is not None:
        overrides["data"]["train_file"] = str(data)
    if validation is not None:
        overrides["data"]["validation_file"] = str(validation)
    if model is not None:
        overrides["model"]["name"] = model
    for keyword, value in options.items():
        section, field = known[keyword]
        overrides.setdefault(section, {})[field] = value
    return base.with_overrides(overrides)


class Run:
    """A finished run: its folder, manifest and metrics, and the loaded classifier."""

    def __init__(self, classifier: LoadedRun) -> None:
        self.classifier = classifier
        self.path = classifier.run_dir
        self.manifest = classifier.manifest

    @property
    def metrics(self) -> dict[str, Any]:
        from trustune.artifact import read_metrics

        return read_metrics(self.path)

    @property
    def privacy(self) -> PrivacyRecord | None:
        """The DP guarantee spent (``epsilon``, ``delta``, ...) when trained with DP, else None."""
        section = self.manifest.privacy
        return section if section is not None and section.dp else None

    def __repr__(self) -> str:
        return f"Run(path={str(self.path)!r})"

    def _repr_html_(self) -> str:
        """Path, task, labels and headline metrics, for Jupyter (escaped HTML)."""
        metrics = self.metrics
        columns = {"validation": metrics.get("validation") or {}}
        columns.update((metrics.get("evaluations") or {}).items())
        head = "".join(f"<th>{escape(name)}</th>" for name in columns)
        rows = []
        for key in _HEADLINE:
            values = [c.get(key) for c in columns.values()]
            if all(v is None for v in values):
                continue
            cells = "".join(f"<td>{'—' if v is None else escape(f'{v:.4f}')}</td>" for v in values)
            rows.append(f"<tr><th>{escape(key)}</th>{cells}</tr>")
        facts = [
            ("run", str(self.path)),
            ("task", self.manifest.task),
            ("labels", ", ".join(str(label) for label in self.manifest.labels or ())),
            ("target", str(self.manifest.target.column or "") if self.manifest.target else ""),
        ]
        facts = [(k, v) for k, v in facts if v]
        if self.privacy is not None:
            eps, delta = self.privacy.epsilon, self.privacy.delta
            facts.append(("differential privacy", f"ε = {eps:.2f}, δ = {delta:.2g}"))
        listed = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
        table = (
            f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"
            if rows
            else "<p>no metrics recorded</p>"
        )
        return f"<div><table>{listed}</table>{table}</div>"


@contextlib.contextmanager
def _library_bars_off(*, warnings: bool) -> Iterator[None]:
    """Silence transformers' and the hub's own progress bars (and, with ``warnings``, their
    advisory warnings) for the duration; the previous settings come back afterwards."""
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hub_bars_off = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    if warnings:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if not hub_bars_off:
            enable_progress_bars()


@functools.wraps(_load)
def load(*args: Any, **kwargs: Any) -> LoadedRun:
    with _library_bars_off(warnings=False):
        return _load(*args, **kwargs)


def _table_file(
    value: DataSource | None, *, name: str, folder: Path, columns: tuple[str, str]
) -> str | None:
    """A path as given; rows in memory (a DataFrame, dicts, (text, label) pairs under the
    ``columns`` names) written to a JSONL file in ``folder``, which the data layer reads."""
    if value is None or isinstance(value, str | Path):
        return None if value is None else str(value)
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        frame = value.rename(columns=str)  # a copy: the caller's frame is left as it was
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        rows: list[Any] = list(value)
        if not rows:
            raise DataError(f"{name}: no rows; give at least one labeled text")
        if all(isinstance(r, Mapping) for r in rows):
            frame = pd.DataFrame.from_records(rows)
        elif all(isinstance(r, Sequence) and not isinstance(r, str) and len(r) == 2 for r in rows):
            frame = pd.DataFrame.from_records(rows, columns=list(columns))
        else:
            raise ConfigError(
                f"{name}: rows must all be mappings (column -> value) or all (text, label) pairs"
            )
    else:
        raise ConfigError(
            f"{name}: {type(value).__name__} is not data; give a file path, a pandas DataFrame, "
            "a list of dicts or a list of (text, label) pairs"
        )
    if frame.empty:
        raise DataError(f"{name}: the DataFrame has no rows")
    path = folder / f"{name}.jsonl"
    frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return str(path)


def _progress(progress: Progress | bool | None) -> Progress | None:
    if isinstance(progress, Progress):
        return progress
    if not progress:
        return None
    from trustune.cli.render import BarProgress  # rich only: importable without the CLI

    return BarProgress()


def finetune(
    data: DataSource | None = None,
    *,
    validation: DataSource | None = None,
    model: str | None = None,
    output: str | Path = "runs/latest",
    config: RunConfig | str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_length: int | None = None,
    skip_bad_rows: bool | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | bool | None = True,
    measure_latency: bool = True,
    observers: Sequence[LoopObserver] | None = None,
    track: Sequence[str] = (),
    track_experiment: str | None = None,
    **options: Any,
) -> Run:
    """Fine-tune a pretrained transformer on labeled texts and write the run folder.

    ``data`` and ``validation`` are files (CSV, TSV, JSONL, Parquet) or rows in memory: a pandas
    DataFrame, a list of dicts, or a list of (text, label) pairs. ``options`` are the other
    config fields, named as the CLI flags of ``trustune train`` (:func:`option_names`):
    ``epochs``, ``batch_size``, ``lr``, ``max_grad_norm``, ``dp_epsilon``, ``dp_delta``, ...;
    they override ``config``. ``progress``: a :class:`~trustune.progress.Progress`, True (a bar
    on stderr) or False (silent). ``observers``: objects with ``on_log(step, fields)`` and
    ``on_validation(step, epoch, metrics)`` (:class:`~trustune.train.observer.LoopObserver`)
    for trackers and tuners; raising :class:`~trustune.errors.StopTraining` from either ends
    training as early stopping does. ``track``: ``--track`` specs (``["mlflow:sqlite:///m.db",
    "tensorboard:tb"]``, docs/tracking.md), the run tracked under its folder's name in the
    experiment ``track_experiment`` (default ``trustune``); none unless given.
    """
    from trustune.run import write_trained_run
    from trustune.tracking import tracking_observers
    from trustune.train.loop import train_model
    from trustune.train.observer import Observers

    known = _options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} of finetune. Allowed: {sorted(known)}")
    base = load_config(config) if isinstance(config, str | Path) else (config or RunConfig())
    shown = _progress(progress)
    with tempfile.TemporaryDirectory(prefix="trustune-data-") as folder:
        # (text, label) pairs go under the columns the run reads
        pairs = (text_column or "text", label_column or "label")
        data_overrides = {
            "train_file": _table_file(data, name="data", folder=Path(folder), columns=pairs),
            "validation_file": _table_file(
                validation, name="validation", folder=Path(folder), columns=pairs
            ),
            "text_column": text_column,
            "label_column": label_column,
            "max_length": max_length,
            "skip_bad_rows": skip_bad_rows,
        }
        overrides: dict[str, dict[str, Any]] = {
            "data": {k: v for k, v in data_overrides.items() if v is not None},
            "model": {"name": model} if model is not None else {},
        }
        for keyword, value in options.items():
            section, field = known[keyword]
            overrides.setdefault(section, {})[field] = value
        nothing_given = data is None and config is None and model is None and not options
        run_config = None if resume and nothing_given else base.with_overrides(overrides)
        run_dir = Path(output)
        trackers = tracking_observers(  # checked before training: a bad spec fails here
            track, run_name=run_dir.resolve().name, experiment=track_experiment,
            warn=(lambda text: shown.message(f"warning: {text}")) if shown is not None else None,
        )  # fmt: skip
        watching = Observers([*(observers or ()), *trackers])
        with _library_bars_off(warnings=True):
            try:
                trained = train_model(
                    run_config, run_dir, resume=resume, overwrite=overwrite, progress=shown,
                    observers=watching.observers,
                )  # fmt: skip
                if shown:
                    shown.message("writing the run folder and report")
                run = Run(write_trained_run(run_dir, trained, measure_latency=measure_latency))
            except BaseException as e:
                watching.abort(e)
                raise
            watching.finish(run.path, run.metrics, run.manifest)
            return run
