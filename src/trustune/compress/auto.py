"""``auto``: try the candidate methods on the guard's data and keep the fastest that stays within
``--max-drop``; the whole table goes into the manifest.

Each candidate is written, loaded as ``trustune.load`` would load it, scored on the guard's rows
and timed. The timings interleave the candidates round by round (the median of the rounds), so
noise from other work on the machine hits every candidate alike. "Fastest" is the throughput at
batch 32, the figure a serving micro-batcher lives on; latency at batch 1 breaks ties.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from trustune.compress.methods import (
    Compressed,
    Job,
    Method,
    MethodSpec,
    known_methods,
    register_method,
)
from trustune.errors import AccuracyDropError, ConfigError, TrustuneError

__all__ = ["CANDIDATES", "AutoMethod"]

# tried in this order; the first is the winner measured on this project's benchmark machine
# (BENCHMARKS.md, "Compression"), the rest are what a machine without its features falls back on
CANDIDATES = ("onnx-int8", "onnx", "int8", "bf16")
ROUNDS = 3


def _timings(loaded: Any, texts: list[str], pairs: list[str] | None) -> dict[str, float]:
    speed = loaded.measure_speed(texts[:64], pairs=None if pairs is None else pairs[:64])
    return {
        "latency_ms_p50": speed["latency_ms_p50"],
        "throughput_per_s": speed["throughput_per_s"],
    }


@register_method
class AutoMethod(Method):
    name = "auto"
    summary = "try the candidates on --data, keep the fastest within --max-drop"

    def apply(self, job: Job) -> Compressed:
        from trustune.compress.guard import measure
        from trustune.compress.runner import open_candidate

        methods = known_methods()
        work = job.model_dir.parent / ".candidates"
        metric = job.parent.task.default_selection
        parent_metrics, _ = measure(job.parent, job.validation)
        parent_value = float(parent_metrics[metric])
        rows: list[dict[str, Any]] = []
        loaded: dict[str, tuple[Any, Compressed, Path]] = {}
        try:
            for name in CANDIDATES:
                if name not in methods:
                    continue
                row: dict[str, Any] = {"method": name}
                rows.append(row)
                folder = work / name / "model"
                folder.mkdir(parents=True)
                sub = Job(
                    parent=job.parent, model_dir=folder, spec=MethodSpec(name),
                    settings=job.settings, validation=job.validation, progress=job.progress,
                )  # fmt: skip
                try:
                    impl = methods[name]()
                    impl.check(sub)
                    compressed = impl.apply(sub)
                    candidate = open_candidate(sub, compressed)
                    value = float(measure(candidate, job.validation)[0][metric])
                except TrustuneError as e:  # a candidate this parent or machine cannot do
                    row |= {"status": "skipped", "summary": str(e)}
                    continue
                drop = round((parent_value - value) * 100, 4)
                row |= {
                    "metric": metric,
                    "value": value,
                    "drop_points": drop,
                    "notes": compressed.notes,
                }
                if drop > job.settings.max_drop:
                    row |= {"status": "too lossy", "summary": f"drop {drop:.2f} points"}
                    continue
                row["status"] = "within --max-drop"
                loaded[name] = (candidate, compressed, folder)
            self._time(loaded, rows, job)
            if not loaded:
                table = "; ".join(
                    f"{r['method']}: {r.get('summary', r.get('status'))}" for r in rows
                )
                if not rows:
                    raise ConfigError("--method auto found no candidate method to try")
                raise AccuracyDropError(
                    f"--method auto: no candidate stays within --max-drop "
                    f"{job.settings.max_drop:g} points ({table}); nothing was written"
                )
            best = max(
                loaded,
                key=lambda n: (
                    _row(rows, n)["throughput_per_s"],
                    -_row(rows, n)["latency_ms_p50"],
                ),
            )
            _row(rows, best)["status"] = "chosen"
            _candidate, compressed, folder = loaded[best]
            for path in folder.iterdir():
                shutil.move(str(path), job.model_dir / path.name)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for row in rows:
            if "throughput_per_s" in row and row["status"] != "skipped":
                row["summary"] = (
                    f"{row['throughput_per_s']:.0f} texts/s at batch 32, "
                    f"{row['latency_ms_p50']:.1f} ms at batch 1, drop {row['drop_points']:.2f} points"
                )
        settings = {
            **compressed.settings, "chosen": best, "candidates": rows,
            "chosen_by": "throughput at batch 32 among the candidates within --max-drop",
        }  # fmt: skip
        return Compressed(
            engine=compressed.engine, format=compressed.format,
            load_transform=compressed.load_transform, settings=settings,
            parameters=compressed.parameters, notes=[f"auto chose {best}", *compressed.notes],
        )  # fmt: skip

    @staticmethod
    def _time(
        loaded: dict[str, tuple[Any, Compressed, Path]], rows: list[dict[str, Any]], job: Job
    ) -> None:
        """Median timings over interleaved rounds (every candidate once per round)."""
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in loaded}
        texts, pairs = job.validation.texts, job.validation.pairs
        for _ in range(ROUNDS):
            for name, (candidate, _, _) in loaded.items():
                rounds[name].append(_timings(candidate, texts, pairs))
        for name, found in rounds.items():
            row = _row(rows, name)
            for key in ("latency_ms_p50", "throughput_per_s"):
                row[key] = statistics.median(t[key] for t in found)


def _row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["method"] == name)
