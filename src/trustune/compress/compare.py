"""``trustune compare``: runs of one task measured side by side, in one process on this machine.

For each run: the size of its weights on disk, its parameters, how it is stored and run
(method, format, engine), latency at batch 1 (p50, p95), throughput at batch 32 and the task's
headline metrics on the same labeled file. Machine noise (another process, the CPU clocking
down) would favour whichever run happened to be measured in a quiet moment, so the runs are
measured round-robin: each repeat measures every run once, the order rotating by one run per
repeat, and the table keeps the median of the repeats. Ratios are against the first run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trustune.artifact import MANIFEST, read_metrics, utc_now
from trustune.compress.hardware import cpu_features
from trustune.compress.runner import model_size
from trustune.errors import ArtifactError, ConfigError, DataError
from trustune.manifest import Manifest, read_manifest
from trustune.values import finite

if TYPE_CHECKING:
    from trustune.data import LabeledData
    from trustune.loaded import LoadedRun
    from trustune.progress import Progress
    from trustune.security.loading import KeyLike

__all__ = [
    "EFFICIENCY_KEY",
    "EfficiencyRow",
    "EfficiencyTable",
    "measure_efficiency",
    "record_efficiency",
]

EFFICIENCY_KEY = "efficiency"  # the table's key in the first run's metrics.json
DEFAULT_REPEATS = 3
LATENCY_SAMPLES = 20  # batch-1 calls per run in each repeat
BATCH_SIZE = 32
THROUGHPUT_ROWS = 1024  # the first rows of the data each throughput pass predicts


@dataclass(frozen=True, kw_only=True)
class EfficiencyRow:
    """One run of the table. Ratios are against the table's first run: ``speedup`` is its
    latency p50 over this run's (above 1: faster), ``throughput_ratio`` this run's throughput
    over its, ``size_ratio`` this run's size over its (below 1: smaller), ``deltas`` this run's
    metrics minus its, ``delta_points`` the main metric's difference in points (hundredths)."""

    run: str
    name: str  # the column header: the folder's name, or its path where names repeat
    method: str  # "trained", or the compression method
    format: str  # "transformers" (safetensors) or "onnx"
    engine: str
    encrypted: bool
    size_bytes: int
    parameters: int | None
    latency_ms_p50: float
    latency_ms_p95: float
    throughput_per_s: float
    metrics: dict[str, float | None]
    speedup: float | None = None
    throughput_ratio: float | None = None
    size_ratio: float | None = None
    deltas: dict[str, float | None] = field(default_factory=dict)
    delta_points: float | None = None
    repeats: dict[str, list[float]] = field(default_factory=dict)  # each repeat's figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run, "name": self.name, "method": self.method, "format": self.format,
            "engine": self.engine, "encrypted": self.encrypted, "size_bytes": self.size_bytes,
            "parameters": self.parameters, "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95, "throughput_per_s": self.throughput_per_s,
            "metrics": dict(self.metrics), "speedup": self.speedup,
            "throughput_ratio": self.throughput_ratio, "size_ratio": self.size_ratio,
            "deltas": dict(self.deltas), "delta_points": self.delta_points,
            "repeats": {k: list(v) for k, v in self.repeats.items()},
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class EfficiencyTable:
    """What :func:`measure_efficiency` measured, and how (the machine, threads, repeats)."""

    task: str
    metric: str  # the main metric (the task's selection default): delta_points is about it
    data: dict[str, Any]  # path, sha256, rows of the labeled file
    rows: tuple[EfficiencyRow, ...]
    repeats: int
    latency_samples: int  # batch-1 calls per run per repeat
    batch_size: int
    throughput_rows: int
    hardware: dict[str, Any]  # trustune.compress.hardware.cpu_features()
    threads: dict[str, Any]  # torch's intra-op threads; ONNX Runtime's (and its version)
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "metric": self.metric, "data": dict(self.data),
            "repeats": self.repeats, "latency_samples": self.latency_samples,
            "batch_size": self.batch_size, "throughput_rows": self.throughput_rows,
            "hardware": dict(self.hardware), "threads": dict(self.threads),
            "created": self.created, "rows": [row.to_dict() for row in self.rows],
        }  # fmt: skip


@dataclass
class _Subject:
    """One run being measured: the loaded run, its reading of the data, its timings."""

    path: Path
    loaded: LoadedRun
    data: LabeledData
    metrics: dict[str, float | None]
    latency_p50: list[float] = field(default_factory=list)
    latency_p95: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)


def _check_runs(runs: Sequence[str | Path]) -> list[tuple[Path, Manifest]]:
    """The run folders and their manifests; refuses a non-run, a repeat or a mixed task."""
    if isinstance(runs, str | Path) or not runs:
        raise ConfigError("compare needs one or more run folders")
    found: list[tuple[Path, Manifest]] = []
    seen: dict[Path, Path] = {}
    for run in runs:
        path = Path(run)
        if not (path / MANIFEST).is_file():
            raise ArtifactError(
                f"{path} is not a run folder (no {MANIFEST}); pass folders written by "
                "`trustune train` or `trustune compress`"
            )
        resolved = path.resolve()
        if resolved in seen:
            raise ConfigError(f"{path} is given twice (as {seen[resolved]}); name each run once")
        seen[resolved] = path
        found.append((path, read_manifest(path)))
    first_path, first = found[0]
    for path, manifest in found[1:]:
        if manifest.task != first.task:
            raise ConfigError(
                f"{path} is a {manifest.task} run and {first_path} a {first.task} run; compare "
                "runs of one task"
            )
        if manifest.pairs != first.pairs:
            what = {True: "text pairs", False: "single texts"}
            raise ConfigError(
                f"{path} reads {what[manifest.pairs]} and {first_path} {what[first.pairs]}; "
                "compare runs that read the same inputs"
            )
    return found


def _names(paths: Sequence[Path]) -> list[str]:
    names = [p.name or str(p) for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _read_data(run: LoadedRun, data: str | Path) -> LabeledData:
    """``data`` as ``run`` reads it (its columns), the targets encoded by its task."""
    from trustune.data import read_labeled

    manifest = run.manifest
    try:
        labeled, _ = read_labeled(
            data, text_column=manifest.text_column, label_column=manifest.label_column,
            pair_column=manifest.text_pair_column, pairs=run.pairs,
        )  # fmt: skip
        run.task.encode(labeled, source=str(data))
    except DataError as e:
        raise type(e)(f"--data does not fit {run.run_dir}: {e}") from None
    if len(labeled.texts) < 2:
        raise DataError(f"--data {data} has {len(labeled.texts)} row(s); compare needs 2 or more")
    return labeled


def _logits(subject: _Subject, rows: slice | int, batch_size: int) -> np.ndarray:
    texts, pairs = subject.data.texts, subject.data.pairs
    if isinstance(rows, int):  # one row
        return subject.loaded.logits(
            [texts[rows]], None if pairs is None else [pairs[rows]], batch_size=1
        )
    return subject.loaded.logits(
        texts[rows], None if pairs is None else pairs[rows], batch_size=batch_size
    )


def _prepare(path: Path, data: str | Path, key: KeyLike | None, batch_size: int) -> _Subject:
    """Load the run, read the data, compute its metrics (which warms up every batch shape)."""
    from trustune.loader import load

    loaded = load(path, key=key)
    labeled = _read_data(loaded, data)
    logits = loaded.logits(labeled.texts, labeled.pairs, batch_size=batch_size)
    result = loaded.task.metrics(labeled.labels, logits)
    summary = loaded.task.summary(result)
    subject = _Subject(
        path=path, loaded=loaded, data=labeled,
        metrics={k: finite(v) for k, v in summary.items()},
    )  # fmt: skip
    for row in range(min(3, len(labeled.texts))):  # warm up batch 1
        _logits(subject, row, 1)
    return subject


def _measure_once(
    subject: _Subject, repeat: int, *, samples: int, batch_size: int, throughput_rows: int
) -> None:
    """One repeat of one run: ``samples`` batch-1 calls, then one throughput pass."""
    n = len(subject.data.texts)
    timings = []
    for i in range(samples):
        row = (repeat * samples + i) % n  # each repeat times the next texts, the same per run
        start = time.perf_counter()
        _logits(subject, row, 1)
        timings.append((time.perf_counter() - start) * 1000.0)
    subject.latency_p50.append(float(np.percentile(timings, 50)))
    subject.latency_p95.append(float(np.percentile(timings, 95)))
    rows = min(n, throughput_rows)
    start = time.perf_counter()
    _logits(subject, slice(0, rows), batch_size)
    subject.throughput.append(rows / max(time.perf_counter() - start, 1e-9))


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0 or numerator <= 0:
        return None
    return round(numerator / denominator, 4)


def _parameters(run: LoadedRun) -> int | None:
    recorded = run.manifest.model.parameters
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    params = getattr(run.model, "parameters", None)
    return int(sum(p.numel() for p in params())) if callable(params) else None


def _engine(run: LoadedRun) -> tuple[str, str, str]:
    """(method, format, engine) of a run: its compression record, or a trained run's."""
    compression = run.manifest.compression
    if compression is not None:
        engine = compression.engine or compression.format
        return compression.method, compression.format, engine
    import torch

    return "trained", "transformers", f"torch {torch.__version__.split('+')[0]}"


def _threads(subjects: Sequence[_Subject]) -> dict[str, Any]:
    import torch

    threads: dict[str, Any] = {"torch": torch.get_num_threads()}
    if any(s.loaded.manifest.compression is not None and
           s.loaded.manifest.compression.format == "onnx" for s in subjects):  # fmt: skip
        import onnxruntime

        from trustune.models.onnx_model import session_threads

        threads["onnxruntime"] = session_threads()
        threads["onnxruntime_version"] = onnxruntime.__version__
    return threads


def _median(values: Sequence[float], digits: int) -> float:
    return round(float(statistics.median(values)), digits)


def _row(subject: _Subject, name: str, first: _Subject, metric: str) -> EfficiencyRow:
    """The row of ``subject``: medians of its repeats, ratios against ``first``."""
    run = subject.loaded
    method, fmt, engine = _engine(run)
    p50 = _median(subject.latency_p50, 3)
    throughput = _median(subject.throughput, 1)
    size = model_size(subject.path / "model")
    deltas: dict[str, float | None] = {}
    for key, value in subject.metrics.items():
        base = first.metrics.get(key)
        deltas[key] = None if value is None or base is None else round(value - base, 6)
    main = deltas.get(metric)
    return EfficiencyRow(
        run=str(subject.path), name=name, method=method, format=fmt, engine=engine,
        encrypted=run.manifest.encrypted, size_bytes=size, parameters=_parameters(run),
        latency_ms_p50=p50, latency_ms_p95=_median(subject.latency_p95, 3),
        throughput_per_s=throughput, metrics=dict(subject.metrics),
        speedup=_ratio(_median(first.latency_p50, 3), p50),
        throughput_ratio=_ratio(throughput, _median(first.throughput, 1)),
        size_ratio=_ratio(float(size), float(model_size(first.path / "model"))),
        deltas=deltas, delta_points=None if main is None else round(main * 100, 4),
        repeats={
            "latency_ms_p50": [round(v, 3) for v in subject.latency_p50],
            "latency_ms_p95": [round(v, 3) for v in subject.latency_p95],
            "throughput_per_s": [round(v, 1) for v in subject.throughput],
        },
    )  # fmt: skip


def measure_efficiency(
    runs: Sequence[str | Path], data: str | Path, *, key: KeyLike | None = None,
    repeats: int = DEFAULT_REPEATS, latency_samples: int = LATENCY_SAMPLES,
    batch_size: int = BATCH_SIZE, throughput_rows: int = THROUGHPUT_ROWS,
    progress: Progress | None = None,
) -> EfficiencyTable:  # fmt: skip
    """Measure ``runs`` (run folders of one task; ``key`` opens encrypted ones) on the labeled
    file ``data``, round-robin over ``repeats``; ratios are against the first run."""
    for flag, value in (("--repeats", repeats), ("latency_samples", latency_samples),
                        ("batch_size", batch_size), ("throughput_rows", throughput_rows)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{flag} must be a whole number >= 1, not {value!r}")
    data_path = Path(data)
    if not data_path.is_file():
        raise DataError(f"--data {data} is not a file; pass a labeled CSV, TSV, JSONL or Parquet")
    checked = _check_runs(runs)
    subjects: list[_Subject] = []
    if progress is not None:
        progress.start("loading runs", total=len(checked))
    try:
        for path, _ in checked:
            subjects.append(_prepare(path, data_path, key, batch_size))
            if progress is not None:
                progress.advance("loading runs")
    finally:
        if progress is not None:
            progress.end("loading runs")
    if progress is not None:
        progress.start("measuring", total=repeats * len(subjects))
    try:
        for repeat in range(repeats):
            shift = repeat % len(subjects)  # who goes first rotates: no run always measured first
            for subject in subjects[shift:] + subjects[:shift]:
                _measure_once(
                    subject, repeat, samples=latency_samples, batch_size=batch_size,
                    throughput_rows=throughput_rows,
                )  # fmt: skip
                if progress is not None:
                    progress.advance("measuring")
    finally:
        if progress is not None:
            progress.end("measuring")
    first = subjects[0]
    metric = first.loaded.task.default_selection
    names = _names([s.path for s in subjects])
    rows = tuple(_row(s, name, first, metric) for s, name in zip(subjects, names, strict=True))
    info = first.data.info
    return EfficiencyTable(
        task=first.loaded.task.name, metric=metric,
        data={"path": str(data_path), "sha256": info.get("sha256"), "rows": info.get("rows")},
        rows=rows, repeats=repeats, latency_samples=latency_samples, batch_size=batch_size,
        throughput_rows=min(throughput_rows, len(first.data.texts)),
        hardware=dict(cpu_features()), threads=_threads(subjects), created=utc_now(),
    )  # fmt: skip


def record_efficiency(run: str | Path, table: EfficiencyTable | Mapping[str, Any]) -> Path:
    """Write the table into ``run``'s records: ``metrics.json["efficiency"]`` and the report
    (its "Efficiency" section); returns the run folder."""
    from trustune.records import save_records

    run_dir = Path(run)
    if not (run_dir / MANIFEST).is_file():
        raise ArtifactError(f"{run_dir} is not a run folder (no {MANIFEST})")
    manifest = read_manifest(run_dir)
    metrics = read_metrics(run_dir)
    metrics[EFFICIENCY_KEY] = table.to_dict() if isinstance(table, EfficiencyTable) else table
    save_records(run_dir, manifest, metrics)
    return run_dir
