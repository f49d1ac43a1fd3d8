"""STS-B benchmark (issue 12): text regression on sentence pairs, trustune against the Trainer.

What it measures
----------------
Three systems on the STS Benchmark (``../shared/data/stsb``: train 5,749 pairs, dev 1,500,
test 1,379; a similarity score in [0, 5]) with the default model, all-MiniLM-L6-v2
(``trustune.models.resolve_model("minilm")``). The two trained systems use the same pairs,
epochs, learning rate, batch size (32), max_length (128), seed, warm-up ratio (0.06) and
weight decay (0.01); both train on train, select the best epoch on dev by Spearman, and are
reported on dev and test:

``zero-shot``
    The anchor: the cosine similarity of the checkpoint's own mean-pooled (attention-mask
    weighted) token embeddings (``AutoModel``, no training). A fine-tuned regressor has to beat
    it to be worth training.
``trainer``
    ``transformers.Trainer`` with ``AutoModelForSequenceClassification(num_labels=1,
    problem_type="regression")``, the tokenizer's pair encoding, ``DataCollatorWithPadding``,
    fp32, raw (unstandardised) targets as the Trainer uses by default, evaluation on dev each
    epoch and ``load_best_model_at_end`` by Spearman.
``trustune``
    ``trustune.finetune(train, validation=dev, task="text-regression", ...)`` (pairs found from
    the ``sentence1``/``sentence2`` columns, MSE on standardised targets, best checkpoint by
    dev Spearman), then ``trustune.load(run).evaluate(...)``; the test figures are checked
    against ``predict_values`` + scipy.

Pearson and Spearman are scipy's for every system. Each system runs in its own subprocess,
one after the other, so that peak memory (``ru_maxrss``) is per system. Training wall time is
the library's training loop, including its per-epoch dev evaluation: the Trainer's
``train_runtime``, trustune's ``training.wall_time_s``; samples/s = epochs x train rows / wall
time for both (each library's own figure, and the loop without in-loop evaluation, are kept
in the JSON and the notes). The share of the machine's CPU that other work used while each
system ran is read from /proc/stat; systems above 10% are flagged.

The data files use standard CSV quoting (a few hundred texts hold quotes); the script parses
them once and gives every system the same texts through unquoted TSV copies in a temporary
folder (trustune reads TSV without CSV quoting, as GLUE TSVs need). Nothing is written into
the repository except the result JSON.

How to run
----------
From the repository root::

    PYTHONPATH=src .venv/bin/python bench/stsb.py                # the full benchmark
    PYTHONPATH=src .venv/bin/python bench/stsb.py --train-rows 64 --eval-rows 64 --epochs 1 \\
        --threads 2                                             # smoke test (a minute or two)

Results go to ``bench/results/stsb-<timestamp>.json`` (or ``--out``); a Markdown block ready
for BENCHMARKS.md is printed to stdout (the children's logs go to stderr). ``--repeats N``
interleaves the systems N times and reports each by its fastest round.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = (REPO_ROOT / ".." / "shared" / "data" / "stsb").resolve()
RESULTS_DIR = REPO_ROOT / "bench" / "results"
SYSTEMS = ("zero-shot", "trainer", "trustune")
TRAINED = ("trainer", "trustune")
SPLITS = ("dev", "test")
HEADER = ("sentence1", "sentence2", "score")

WARMUP_RATIO = 0.06
WEIGHT_DECAY = 0.01
EMBED_BATCH = 64  # zero-shot encoding batch

TARGET_DEV_SPEARMAN = 0.88
TARGET_TEST_SPEARMAN = 0.86
TARGET_SPEEDUP = 2.0
TARGET_PEAK_MB = 4096.0
NOISE_THRESHOLD = 0.10  # share of CPU capacity used by others above which a system is flagged
# The zero-shot anchor on the full splits at max_length 128 (pearson, spearman).
ZERO_SHOT_EXPECTED = {"dev": (0.870, 0.867), "test": (0.827, 0.820)}

Pairs = tuple[list[str], list[str], list[float]]


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def read_rows(path: Path, *, quoted: bool) -> list[tuple[str, str, str]]:
    """The (sentence1, sentence2, score) rows of an STS-B TSV; ``quoted``: standard CSV quoting."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(
            handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
        )
        header = tuple(next(reader, ()))
        if header != HEADER:
            raise ValueError(f"{path}: header {list(header)}, expected {list(HEADER)}")
        rows: list[tuple[str, str, str]] = []
        for cells in reader:
            if len(cells) != 3 or not cells[0] or not cells[1]:
                raise ValueError(f"{path} line {reader.line_num}: expected 3 non-empty fields")
            float(cells[2])  # a bad score fails here, naming nothing worse than the value
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def write_rows(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    """An unquoted TSV that ``read_rows(quoted=False)`` and trustune's TSV reader read as is."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("\t".join(HEADER) + "\n")
        for row in rows:
            if any("\t" in cell or "\n" in cell or "\r" in cell for cell in row):
                raise ValueError(f"a text holds a tab or newline: {row!r}")
            handle.write("\t".join(row) + "\n")


def read_pairs(path: Path) -> Pairs:
    """First texts, second texts and float scores of a prepared (unquoted) copy."""
    rows = read_rows(path, quoted=False)
    return [r[0] for r in rows], [r[1] for r in rows], [float(r[2]) for r in rows]


def correlations(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Pearson and Spearman (scipy), the same for every system."""
    import numpy as np
    from scipy import stats

    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return {"pearson": math.nan, "spearman": math.nan}
    return {
        "pearson": float(stats.pearsonr(y, p).statistic),
        "spearman": float(stats.spearmanr(y, p).statistic),
    }


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
    return [int(v) for v in fields[1:9]] if fields and fields[0] == "cpu" else None


def noise_share(before: list[int] | None, after: list[int] | None, own_cpu_s: float) -> float:
    """Share of the machine's CPU capacity, between two readings, not spent by our child
    (steal by other VMs plus busy time of other processes, other containers included)."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return math.nan
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(delta)
    if total <= 0:
        return math.nan
    busy = total - delta[3] - delta[4]  # all but idle and iowait
    others = max(0.0, busy - delta[7] - own_cpu_s * os.sysconf("SC_CLK_TCK"))
    return (delta[7] + others) / total


def lscpu() -> dict[str, str]:
    """``lscpu``'s fields (without the flag list), or nothing where it is missing."""
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if value.strip() and key.strip() != "Flags":
            fields[key.strip()] = value.strip()
    return fields


def machine_info() -> dict[str, Any]:
    """CPU (from lscpu), accelerator and library versions of this machine."""
    cpu = lscpu()
    info: dict[str, Any] = {
        "cpu_model": cpu.get("Model name") or platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "lscpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in ("torch", "transformers", "accelerate", "scipy"):
        try:
            info[name] = str(__import__(name).__version__)
        except Exception as exc:  # only on broken installs
            info[name] = f"unavailable ({type(exc).__name__})"
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        info["torch_threads"], info["gpu"] = None, None
    return info


# --------------------------------------------------------------------------------------------
# Child: zero-shot cosine of mean-pooled embeddings
# --------------------------------------------------------------------------------------------


def run_zero_shot(spec: dict[str, Any]) -> dict[str, Any]:
    """Pearson/Spearman of cos(mean-pooled embedding 1, embedding 2) against the scores."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    model = AutoModel.from_pretrained(spec["model_dir"]).to(device).eval()

    def embed(texts: list[str]) -> torch.Tensor:
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), EMBED_BATCH):
                batch = tokenizer(
                    texts[start : start + EMBED_BATCH], padding=True, truncation=True,
                    max_length=spec["max_length"], return_tensors="pt",
                ).to(device)  # fmt: skip
                hidden = model(**batch).last_hidden_state  # (batch, seq, hidden)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
                chunks.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))
        return torch.cat(chunks)

    result: dict[str, Any] = {"device": str(device), "pooling": "mean (attention-mask weighted)"}
    encode_s, sentences = 0.0, 0
    for split in SPLITS:
        first, second, scores = read_pairs(Path(spec[split]))
        started = time.perf_counter()
        cosine = F.cosine_similarity(embed(first), embed(second)).float().cpu().numpy()
        encode_s += time.perf_counter() - started
        sentences += 2 * len(first)
        result[split] = correlations(scores, cosine)
    result["encode_s"] = encode_s
    result["encode_sentences_per_s"] = sentences / encode_s if encode_s else None
    result["torch_threads"] = torch.get_num_threads()
    return result


# --------------------------------------------------------------------------------------------
# Child: the Hugging Face Trainer
# --------------------------------------------------------------------------------------------


class _EncodedPairs:
    """A map-style dataset of pair-encoded examples with float targets (no ``datasets``)."""

    def __init__(self, encodings: dict[str, list[list[int]]], scores: Sequence[float]) -> None:
        self.encodings = encodings
        self.scores = [float(s) for s in scores]

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {key: values[index] for key, values in self.encodings.items()}
        item["labels"] = self.scores[index]
        return item


def _encode(tokenizer: Any, path: Path, max_length: int) -> _EncodedPairs:
    first, second, scores = read_pairs(path)
    encodings = tokenizer(first, second, truncation=True, max_length=max_length)
    return _EncodedPairs(dict(encodings), scores)


def _regression_metrics(eval_pred: Any) -> dict[str, float]:
    import numpy as np

    predictions = eval_pred.predictions
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    y = np.asarray(eval_pred.label_ids, dtype=np.float64).reshape(-1)
    return {**correlations(y, p), "mse": float(np.mean((p - y) ** 2))}


def _make_timing_callback() -> Any:
    """A callback timing the evaluation and checkpoint saving done inside ``Trainer.train``."""
    from transformers import TrainerCallback

    class InLoopTimer(TrainerCallback):  # type: ignore[misc]
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
                self.save_s += time.time() - self.mark
                self.mark = None

    return InLoopTimer()


def _training_arguments(spec: dict[str, Any], out_dir: str) -> Any:
    """The Trainer's arguments, across transformers 4.x and 5.x names; fp32, defaults otherwise."""
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
        "metric_for_best_model": "spearman",
        "greater_is_better": True,
        "report_to": "none",
    }
    # transformers 5 folded warmup_ratio into warmup_steps (a float < 1 is a ratio).
    kwargs["warmup_ratio" if "warmup_ratio" in params else "warmup_steps"] = WARMUP_RATIO
    return TrainingArguments(**kwargs)


def run_trainer(spec: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune a one-output regression head with the Trainer, best epoch by dev Spearman."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )

    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    data = {name: _encode(tokenizer, Path(spec[name]), spec["max_length"]) for name in SPLITS}
    train_ds = _encode(tokenizer, Path(spec["train"]), spec["max_length"])
    with tempfile.TemporaryDirectory(prefix="stsb-trainer-") as out_dir:
        args = _training_arguments(spec, out_dir)
        set_seed(spec["seed"])  # before the new head is initialised, as run_glue.py does
        model = AutoModelForSequenceClassification.from_pretrained(
            spec["model_dir"], num_labels=1, problem_type="regression"
        )
        timer = _make_timing_callback()
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=DataCollatorWithPadding(tokenizer),
            train_dataset=train_ds,
            eval_dataset=data["dev"],
            processing_class=tokenizer,
            compute_metrics=_regression_metrics,
            callbacks=[timer],
        )
        train_result = trainer.train()
        best = trainer.state.best_model_checkpoint
        history = [
            {"epoch": e.get("epoch"), "spearman": e.get("eval_spearman")}
            for e in trainer.state.log_history
            if "eval_spearman" in e
        ]
        result: dict[str, Any] = {}
        for name in SPLITS:
            output = trainer.predict(data[name], metric_key_prefix=name)  # type: ignore[arg-type]
            result[name] = {
                **correlations(data[name].scores, output.predictions),
                "mse": float((output.metrics or {})[f"{name}_mse"]),
            }
        mixed_precision = str(getattr(trainer.accelerator, "mixed_precision", "unknown"))

    metrics = train_result.metrics
    runtime = float(metrics["train_runtime"])
    return {
        **result,
        "wall_time_s": runtime,
        "wall_time_definition": "Trainer train_runtime (includes per-epoch dev evaluation "
        "and checkpoint saving)",
        "wall_time_loop_only_s": runtime - timer.eval_s - timer.save_s,
        "in_loop_eval_s": timer.eval_s,
        "in_loop_save_s": timer.save_s,
        "library_samples_per_s": float(metrics["train_samples_per_second"]),
        "steps": int(train_result.global_step),
        "train_loss": float(metrics.get("train_loss", math.nan)),
        "precision": "fp32",
        "accelerate_mixed_precision": mixed_precision,
        "device": str(args.device),
        "best_checkpoint": Path(best).name if best else None,
        "epoch_history": history,
        "eval_batch_size": args.per_device_eval_batch_size,
        "torch_threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------------------------
# Child: trustune
# --------------------------------------------------------------------------------------------


def run_trustune(spec: dict[str, Any]) -> dict[str, Any]:
    """``trustune.finetune`` with task text-regression, then ``trustune.load(run).evaluate``."""
    import numpy as np
    import torch

    import trustune

    with tempfile.TemporaryDirectory(prefix="stsb-trustune-") as out_dir:
        run = trustune.finetune(
            spec["train"],
            validation=spec["dev"],
            model="minilm",
            output=Path(out_dir) / "run",
            task="text-regression",
            epochs=spec["epochs"],
            batch_size=spec["batch_size"],
            lr=spec["lr"],
            max_length=spec["max_length"],
            seed=spec["seed"],
            warmup_ratio=WARMUP_RATIO,
            weight_decay=WEIGHT_DECAY,
            overwrite=True,
            measure_latency=False,
            progress=False,
        )
        training = dict(run.manifest.to_dict()["training"])
        threads_after_training = torch.get_num_threads()
        model = trustune.load(run.path)
        if not isinstance(model, trustune.TextRegressor):
            raise TypeError(f"expected a text-regression run, got {type(model).__name__}")
        result: dict[str, Any] = {}
        for name in SPLITS:
            metrics = model.evaluate(spec[name], measure_latency=False)
            result[name] = {k: metrics.get(k) for k in ("pearson", "spearman", "mse", "mae", "r2")}
        # The same scipy figures as the other systems, from the public prediction call.
        first, second, scores = read_pairs(Path(spec["test"]))
        values = np.asarray(model.predict_values(first, second), dtype=np.float64)
        check = correlations(scores, values)

    return {
        **result,
        "test_via_predict_values": check,
        "test_check_max_diff": max(abs(check[k] - float(result["test"][k])) for k in check),
        "wall_time_s": float(training["wall_time_s"]),
        "wall_time_definition": "trustune manifest training.wall_time_s (includes per-epoch "
        "validation, excludes checkpoint writes)",
        "wall_time_loop_only_s": float(training["loop_time_s"]),
        "library_samples_per_s": float(training["train_samples_per_s"]),
        "library_loop_samples_per_s": training.get("loop_samples_per_s"),
        "steps": int(training["steps"]),
        "precision": training.get("precision"),
        "attention": training.get("attention"),
        "device": training.get("device"),
        "epochs_completed": training.get("epochs_completed"),
        "best_step": training.get("best_step"),
        "epoch_history": training.get("history"),
        "torch_threads": threads_after_training,
    }


CHILDREN = {"zero-shot": run_zero_shot, "trainer": run_trainer, "trustune": run_trustune}


def child_main(system: str, spec_path: Path, result_path: Path) -> int:
    """Entry point of a child process: run one system, write its result JSON, never raise."""
    spec = json.loads(spec_path.read_text())
    started = time.time()
    result: dict[str, Any] = {"system": system, "ok": False}
    try:
        import torch

        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        result.update(CHILDREN[system](spec))
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
    if spec["threads"]:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
            env[name] = str(spec["threads"])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", system,
           "--child-spec", str(spec_path), "--child-result", str(result_path)]  # fmt: skip
    print(f"[stsb] === {system} ===", file=sys.stderr, flush=True)
    sys.stdout.flush()
    started = time.time()
    before = cpu_counters()
    proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    elapsed = time.time() - started
    after = cpu_counters()
    if result_path.exists():
        result: dict[str, Any] = json.loads(result_path.read_text())
    else:
        result = {"system": system, "ok": False,
                  "error": f"child exited with code {proc.returncode} without a result"}  # fmt: skip
    result["returncode"] = proc.returncode
    result["process_wall_s"] = elapsed
    result["cpu_share_used_by_others"] = noise_share(before, after, result.get("child_cpu_s", 0.0))
    if result.get("ok") and system in TRAINED:
        rows = spec["train_rows"] * spec["epochs"]
        result["samples_per_s"] = rows / result["wall_time_s"] if result["wall_time_s"] else None
        if result.get("wall_time_loop_only_s"):
            result["samples_per_s_loop_only"] = rows / result["wall_time_loop_only_s"]
        expected = -(-spec["train_rows"] // spec["batch_size"]) * spec["epochs"]
        if result.get("steps") != expected:
            result["notes"] = f"steps {result.get('steps')} != expected {expected}"
    status = "ok" if result.get("ok") else f"FAILED: {result.get('error')}"
    print(f"[stsb] {system}: {status} ({elapsed:.0f}s)", file=sys.stderr, flush=True)
    return result


def pick_representative(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best of N by samples/s (noise only ever slows a run); the median is kept beside it."""
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        return runs[-1]
    timed = [r for r in ok if r.get("samples_per_s")]
    best = dict(max(timed, key=lambda r: r["samples_per_s"]) if timed else ok[-1])
    best["repeats"] = len(runs)
    best["failed_rounds"] = len(runs) - len(ok)
    if timed:
        best["samples_per_s_all"] = [r["samples_per_s"] for r in timed]
        best["samples_per_s_median"] = statistics.median(best["samples_per_s_all"])
        best["test_spearman_all"] = [r["test"]["spearman"] for r in timed]
    return best


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    """``a[key] / b[key]`` where both results have the figure."""
    top, bottom = (a or {}).get(key), (b or {}).get(key)
    return float(top / bottom) if top is not None and bottom else None


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios of trustune against the Trainer and the anchor, and whether the targets are met."""

    def ok(name: str) -> dict[str, Any] | None:
        r = results.get(name)
        return r if r and r.get("ok") else None

    tt, hf, anchor = ok("trustune"), ok("trainer"), ok("zero-shot")
    summary: dict[str, Any] = {
        "speedup_vs_trainer": _ratio(tt, hf, "samples_per_s"),
        "speedup_vs_trainer_loop_only": _ratio(tt, hf, "samples_per_s_loop_only"),
        "peak_mb_vs_trainer": _ratio(tt, hf, "peak_rss_mb"),
    }
    targets: dict[str, Any] = {}
    if tt is not None:
        targets["dev_spearman_ge_088"] = tt["dev"]["spearman"] >= TARGET_DEV_SPEARMAN
        targets["test_spearman_ge_086"] = tt["test"]["spearman"] >= TARGET_TEST_SPEARMAN
        targets["peak_memory_le_4gb"] = tt["peak_rss_mb"] <= TARGET_PEAK_MB
        for other, name in ((hf, "trainer"), (anchor, "zero_shot")):
            if other is None:
                continue
            for split in SPLITS:
                summary[f"{split}_spearman_delta_vs_{name}"] = (
                    tt[split]["spearman"] - other[split]["spearman"]
                )
        if hf is not None:
            speedup = summary["speedup_vs_trainer"]
            targets["ahead_of_trainer_at_ge_2x_throughput"] = bool(
                speedup is not None
                and speedup >= TARGET_SPEEDUP
                and all(summary[f"{s}_spearman_delta_vs_trainer"] > 0 for s in SPLITS)
            )
        if anchor is not None:
            targets["ahead_of_zero_shot"] = all(
                summary[f"{s}_spearman_delta_vs_zero_shot"] > 0 for s in SPLITS
            )
    summary["targets"] = targets
    return summary


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def _check(flag: bool | None) -> str:
    return "n/a" if flag is None else ("met" if flag else "NOT met")


def _row(name: str, r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return f"| {name} | error | | | | | | {_num(r.get('peak_rss_mb'), 0)} |"
    cells = [r[s][k] for s in SPLITS for k in ("pearson", "spearman")]
    figures = " | ".join(_num(v, 4) for v in cells)
    return (
        f"| {name} | {figures} | {_num(r.get('samples_per_s'))} | {_num(r.get('wall_time_s'))} "
        f"| {_num(r['peak_rss_mb'], 0)} |"
    )


def _system_notes(name: str, r: dict[str, Any]) -> list[str]:
    if not r.get("ok"):
        return [f"{name} failed: {r.get('error', 'not run')}"]
    notes: list[str] = []
    if name == "zero-shot":
        notes.append(
            f"zero-shot: no training; encoding took {r['encode_s']:.1f} s "
            f"({_num(r.get('encode_sentences_per_s'))} sentences/s, {r.get('device')})"
        )
    elif name == "trainer":
        notes.append(
            f"trainer: of its {r['wall_time_s']:.1f} s, per-epoch dev evaluation took "
            f"{r['in_loop_eval_s']:.1f} s (eval batch {r.get('eval_batch_size')}) and checkpoint "
            f"saving {r['in_loop_save_s']:.1f} s; loop only "
            f"{_num(r.get('samples_per_s_loop_only'))} samples/s; Trainer's own figure "
            f"{r['library_samples_per_s']:.1f} samples/s; best {r.get('best_checkpoint')}"
        )
    else:
        notes.append(
            f"trustune: loop only {_num(r.get('samples_per_s_loop_only'))} samples/s; own "
            f"figure {r['library_samples_per_s']:.1f} samples/s; precision {r.get('precision')}, "
            f"attention {r.get('attention')}, steps {r.get('steps')}, best step "
            f"{r.get('best_step')}"
        )
        if r.get("test_check_max_diff", 0.0) > 1e-4:
            notes.append(
                f"trustune: evaluate() and predict_values+scipy differ on test by "
                f"{r['test_check_max_diff']:.2g}"
            )
    if r.get("notes"):
        notes.append(f"{name}: {r['notes']}")
    if r.get("repeats", 1) > 1 and r.get("samples_per_s_all"):
        values = ", ".join(_num(v) for v in r["samples_per_s_all"])
        notes.append(
            f"{name}: best of {r['repeats']} interleaved rounds (round {r.get('round')}); "
            f"samples/s per round: {values}; test Spearman per round: "
            + ", ".join(_num(v, 4) for v in r.get("test_spearman_all", []))
        )
    others = r.get("cpu_share_used_by_others")
    if others is not None and math.isfinite(others) and others > NOISE_THRESHOLD:
        notes.append(
            f"{name}: {100 * others:.0f}% of the machine's CPU capacity went to other work "
            "while it ran: its figures are noisy, rerun before quoting"
        )
    return notes


def render_markdown(report: dict[str, Any]) -> str:
    """The block to paste into BENCHMARKS.md."""
    m, cfg = report["machine"], report["config"]
    results: dict[str, dict[str, Any]] = report["results"]
    summary = report["summary"]
    full = cfg["train_rows"] == cfg["train_rows_available"] and not cfg["eval_rows"]
    train = f"{cfg['train_rows']:,}" + (
        f" of {cfg['train_rows_available']:,} (seeded subset)"
        if cfg["train_rows"] != cfg["train_rows_available"]
        else ""
    )
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    lines = [
        f"### STS-B benchmark (issue 12) — {report['date']}",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpu_count']} CPUs"
        + (f" ({m['cpu_affinity']} usable)" if m.get("cpu_affinity") != m["cpu_count"] else "")
        + f"{gpu}, torch {m['torch']} ({cfg['threads'] or m['torch_threads']} threads), "
        f"transformers {m['transformers']}, Python {m['python']}",
        f"- Command: `{report['command']}`",
        f"- Data: STS-B train {train} pairs; dev {cfg['dev_rows']:,} (model selection); "
        f"test {cfg['test_rows']:,}" + ("" if full else " — a subset: not the benchmark's figures"),
        f"- Settings: all-MiniLM-L6-v2, {cfg['epochs']} epoch(s), lr {cfg['lr']:g}, batch "
        f"{cfg['batch_size']}, max_length {cfg['max_length']}, warm-up {WARMUP_RATIO}, weight "
        f"decay {WEIGHT_DECAY}, seed {cfg['seed']}; best epoch by dev Spearman"
        + (f"; best of {cfg['repeats']} interleaved rounds" if cfg["repeats"] > 1 else ""),
        "",
        "| system | dev Pearson | dev Spearman | test Pearson | test Spearman | train samples/s "
        "| wall s | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    for name in cfg["systems"]:
        r = results.get(name, {})
        lines.append(_row(name, r))
        notes += _system_notes(name, r)
    lines += [
        "",
        "Wall s is each library's training loop (Trainer `train_runtime`, trustune "
        "`training.wall_time_s`), both including their per-epoch dev evaluation; train samples/s "
        "= epochs × train pairs ÷ wall s. Figures are from one run on one machine: compare the "
        "ratios.",
        "",
        f"- trustune ÷ trainer, train samples/s: {_times(summary['speedup_vs_trainer'])} "
        f"(loops without in-loop evaluation: {_times(summary['speedup_vs_trainer_loop_only'])})",
        f"- trustune ÷ trainer, peak memory: {_times(summary['peak_mb_vs_trainer'])}",
    ]
    anchor = results.get("zero-shot", {})
    if anchor.get("ok") and not cfg["eval_rows"]:  # the anchor does not train
        for split, (pearson, spearman) in ZERO_SHOT_EXPECTED.items():
            got = anchor[split]
            if abs(got["pearson"] - pearson) > 0.01 or abs(got["spearman"] - spearman) > 0.01:
                notes.append(
                    f"zero-shot {split}: {got['pearson']:.3f} / {got['spearman']:.3f}, expected "
                    f"about {pearson:.3f} / {spearman:.3f}: check pooling and max_length"
                )
    targets = summary["targets"]
    tt = results.get("trustune", {})
    if tt.get("ok"):
        lines += [
            "",
            "Targets (trustune)" + ("" if full else ", on a subset: not conclusive") + ":",
            "",
            f"- dev Spearman ≥ {TARGET_DEV_SPEARMAN}: {_check(targets.get('dev_spearman_ge_088'))}"
            f" ({tt['dev']['spearman']:.4f})",
            f"- test Spearman ≥ {TARGET_TEST_SPEARMAN}: "
            f"{_check(targets.get('test_spearman_ge_086'))} ({tt['test']['spearman']:.4f})",
            f"- ahead of the Trainer (dev and test Spearman) at ≥ {TARGET_SPEEDUP:g}× its "
            f"training throughput: {_check(targets.get('ahead_of_trainer_at_ge_2x_throughput'))} "
            f"({_times(summary['speedup_vs_trainer'])}; Spearman "
            f"{_delta(summary.get('dev_spearman_delta_vs_trainer'))} dev, "
            f"{_delta(summary.get('test_spearman_delta_vs_trainer'))} test)",
            f"- peak memory ≤ 4 GB ({TARGET_PEAK_MB:.0f} MB): "
            f"{_check(targets.get('peak_memory_le_4gb'))} ({_num(tt['peak_rss_mb'], 0)} MB)",
            f"- ahead of the zero-shot anchor (dev and test Spearman): "
            f"{_check(targets.get('ahead_of_zero_shot'))} "
            f"({_delta(summary.get('dev_spearman_delta_vs_zero_shot'))} dev, "
            f"{_delta(summary.get('test_spearman_delta_vs_zero_shot'))} test)",
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
        python = python if rel.startswith("..") else rel
    except ValueError:
        pass
    script = os.path.relpath(Path(__file__).resolve())
    prefix = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    return prefix + shlex.join([python, script, *argv])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="STS-B benchmark: trustune.finetune (text-regression) against the Hugging "
        "Face Trainer and the checkpoint's zero-shot cosine; each system in its own subprocess.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated systems to run, from {', '.join(SYSTEMS)}")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size")
    parser.add_argument("--seed", type=int, default=42, help="seed for training and subsets")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per encoded pair")
    parser.add_argument("--train-rows", type=int, default=0,
                        help="train on a seeded random subset of N pairs; 0 = all 5,749")  # fmt: skip
    parser.add_argument("--eval-rows", type=int, default=0,
                        help="evaluate on seeded subsets of N dev and N test pairs (smoke "
                        "tests); 0 = all")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0,
                        help="torch/OpenMP threads per system; 0 = torch's default")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds, systems interleaved; each reported by its fastest round")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder with train.tsv, dev.tsv, test.tsv")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None,
                        help="result JSON; default: bench/results/stsb-<timestamp>.json")  # fmt: skip
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        parser.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    args.systems = [s for s in SYSTEMS if s in systems]
    for name in ("epochs", "batch_size", "repeats", "max_length"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not args.lr > 0:
        parser.error("--lr must be positive")
    for name in ("train_rows", "eval_rows", "threads"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or positive")
    return args


def _subset(rows: list[Any], size: int, seed: int) -> list[Any]:
    """A seeded random subset of ``size`` rows, in file order; all rows when ``size`` is 0."""
    if not size or size >= len(rows):
        return rows
    import numpy as np

    picked = np.random.default_rng(seed).choice(len(rows), size=size, replace=False)
    return [rows[i] for i in sorted(picked.tolist())]


def _write_json(path: Path, report: dict[str, Any]) -> None:
    """Atomic: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=2, default=str))
    os.replace(partial, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        if args.child_spec is None or args.child_result is None:
            raise SystemExit("--child needs --child-spec and --child-result")
        return child_main(args.child, args.child_spec, args.child_result)

    from trustune.models import resolve_model

    raw_argv = list(sys.argv[1:] if argv is None else argv)
    now = dt.datetime.now(dt.UTC).astimezone()
    out_path: Path = args.out or RESULTS_DIR / f"stsb-{now.strftime('%Y%m%dT%H%M%S')}.json"
    data_dir = args.data_dir.resolve()
    originals = {split: data_dir / f"{split}.tsv" for split in ("train", *SPLITS)}
    for split, path in originals.items():
        if not path.is_file():
            raise SystemExit(f"{split} data not found: {path} (use --data-dir)")
    rows = {split: read_rows(path, quoted=True) for split, path in originals.items()}

    with tempfile.TemporaryDirectory(prefix="stsb-") as tmp:
        work_dir = Path(tmp)  # outside the repo, deleted afterwards
        prepared: dict[str, list[tuple[str, str, str]]] = {
            "train": _subset(rows["train"], args.train_rows, args.seed),
            **{
                s: _subset(rows[s], args.eval_rows, args.seed + 1 + i) for i, s in enumerate(SPLITS)
            },
        }
        spec: dict[str, Any] = {
            "model_dir": resolve_model("minilm").location,
            "epochs": args.epochs,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "seed": args.seed,
            "threads": args.threads,
            "train_rows": len(prepared["train"]),
        }
        for split, split_rows in prepared.items():
            spec[split] = str(work_dir / f"{split}.tsv")
            write_rows(Path(spec[split]), split_rows)
        report: dict[str, Any] = {
            "benchmark": "stsb",
            "issue": 12,
            "date": now.isoformat(timespec="seconds"),
            "command": command_line(raw_argv),
            "machine": machine_info(),
            "config": {
                **{k: v for k, v in spec.items() if k not in ("train", *SPLITS)},
                "model": "minilm (all-MiniLM-L6-v2)",
                "systems": args.systems,
                "repeats": args.repeats,
                "eval_rows": args.eval_rows,
                "data_dir": str(data_dir),
                "train_rows_available": len(rows["train"]),
                "dev_rows": len(prepared["dev"]),
                "test_rows": len(prepared["test"]),
                "warmup_ratio": WARMUP_RATIO,
                "weight_decay": WEIGHT_DECAY,
                "quoted_texts": {
                    s: sum(1 for r in prepared[s] for c in r[:2] if '"' in c) for s in prepared
                },
            },
            "results": {},
        }
        runs: dict[str, list[dict[str, Any]]] = {system: [] for system in args.systems}
        report["runs"] = runs
        for round_no in range(1, args.repeats + 1):
            if args.repeats > 1:
                print(f"[stsb] round {round_no}/{args.repeats}", file=sys.stderr)
            for system in args.systems:
                if system == "zero-shot" and round_no > 1:
                    continue  # deterministic and untimed: once is enough
                result = launch(system, spec, work_dir)
                result["round"] = round_no
                runs[system].append(result)
                report["results"][system] = pick_representative(runs[system])
                report["summary"] = summarize(report["results"])
                _write_json(out_path, report)  # after every system: a long run keeps its part

    report["summary"] = summarize(report["results"])
    report["markdown"] = render_markdown(report)
    _write_json(out_path, report)
    print(report["markdown"])
    print(f"\n[stsb] results: {out_path}", file=sys.stderr)
    return 0 if all(r.get("ok") for r in report["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
