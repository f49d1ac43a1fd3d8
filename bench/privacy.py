"""Benchmark: differentially private training on SST-2, non-private vs ε=8 vs ε=3.

What it measures, each system in its own subprocess (peak memory is the child's own):

- **step time at the same logical batch**: the same fixed batches of real SST-2 rows through
  one optimizer step each, non-private (AdamW, batch-gradient clipping) and DP-SGD (trustune's
  ghost clipping; Opacus's own two-pass ghost clipping; DP with the embeddings trained), median
  over the measured steps after warm-up, with the peak resident memory of each child;
- **accuracy**: a full `trustune.finetune` per system on the same training rows, model selected
  on a dev subset, accuracy on the 872-row test set, ε spent;
- **membership inference**: `trustune.privacy.audit_privacy` on each trained model (members: rows
  of its training set; non-members: SST-2 rows it never saw), and a positive control: a
  non-private model trained for many epochs on a small subset, kept at its last (most overfit)
  step.

Markdown goes to stdout and bench/results/privacy-TIMESTAMP.md, JSON next to it.

    .venv/bin/python bench/privacy.py --train-rows 2000 --epochs 3   # a trial
    .venv/bin/python bench/privacy.py                                # all 60,614 rows
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sst2"
RESULTS = REPO / "bench" / "results"

STEP_SYSTEMS = (
    "step:non-private", "step:non-private-bf16", "step:dp", "step:dp-two-pass",
    "step:dp-opacus-ghost", "step:dp-embeddings",
)  # fmt: skip
PAIRED = "step:paired"
TRAIN_SYSTEMS = ("train:non-private", "train:dp-eps8", "train:dp-eps3", "train:overfit")


# -- helpers -----------------------------------------------------------------------------------


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)
    return [str(t) for t in frame["sentence"]], [int(v) for v in frame["label"]]


def write_tsv(path: Path, texts: Sequence[str], labels: Sequence[int]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("sentence\tlabel\n")
        for text, label in zip(texts, labels, strict=True):
            handle.write(f"{text}\t{label}\n")
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    info: dict[str, Any] = {"cpu_model": cpu, "cpu_count": os.cpu_count(),
                            "python": platform.python_version()}  # fmt: skip
    for name in ("torch", "transformers", "accelerate", "opacus"):
        try:
            info[name] = str(__import__(name).__version__)
        except ImportError:
            info[name] = "missing"
    return info


# -- children ----------------------------------------------------------------------------------


def _step_setup(spec: dict[str, Any]) -> dict[str, Any]:
    """The data and fixed batches every step system runs on."""
    import torch

    from trustune.encoding import encode_texts
    from trustune.models import load_tokenizer, resolve_model

    torch.manual_seed(0)
    texts, labels = read_tsv(Path(spec["train_file"]))
    resolved = resolve_model(spec["model"])
    encoded = encode_texts(load_tokenizer(resolved), texts, max_length=spec["max_length"])
    rng = random.Random(0)
    lengths = [len(ids) for ids in encoded.input_ids]
    batches = [
        sorted(rng.sample(range(len(texts)), spec["batch_size"]), key=lambda j: -lengths[j])
        for _ in range(spec["steps"] + spec["warmup"])
    ]  # fmt: skip
    return {"resolved": resolved, "encoded": encoded, "labels": labels, "batches": batches,
            "rows": len(texts)}  # fmt: skip


def _stepper(system: str, spec: dict[str, Any], setup: dict[str, Any]) -> tuple[Any, Any]:
    """A fresh model and a function taking one optimizer step on a batch of row indices."""
    import torch

    from trustune.config import RunConfig
    from trustune.models import load_classifier
    from trustune.privacy.engine import PrivateTraining, physical_batches, plan_privacy
    from trustune.train.setup import build_optimizer

    batch_size, labels = spec["batch_size"], setup["labels"]
    model = load_classifier(
        setup["resolved"], id2label={0: "0", 1: "1"}, attn_implementation="eager"
    )
    config = RunConfig.from_dict({
        "train": {"batch_size": batch_size, "max_grad_norm": 1.0},
        "privacy": {"epsilon": 8.0, "freeze_embeddings": system != "step:dp-embeddings"},
    })  # fmt: skip

    def batches(idx: list[int]) -> list[dict[str, Any]]:
        return physical_batches(
            idx, encoded=setup["encoded"], labels=labels, pad_id=0, physical_batch_size=batch_size
        )

    if system.startswith("step:non-private"):
        # fp32 is the like-for-like baseline (DP trains in fp32); bf16 autocast is what
        # `--precision auto` picks for non-private training on a CPU with AMX / AVX512-BF16
        model.train()
        optimizer = build_optimizer(model, config.train)
        bf16 = system.endswith("bf16")

        def plain_step(idx: list[int]) -> None:
            batch = batches(idx)[0]
            batch.pop("position_ids")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return model, plain_step
    plan = plan_privacy(config, train_rows=setup["rows"])
    private = PrivateTraining(
        plan, lean_first_pass=system != "step:dp-opacus-ghost",
        book_keeping=system != "step:dp-two-pass",
    )  # fmt: skip
    private.freeze(model)
    private.attach(model, build_optimizer(model, config.train))
    return model, lambda idx: private.step(batches(idx))


def _step_child(system: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One system alone in its process: step time and peak memory."""
    setup = _step_setup(spec)
    model, step = _stepper(system, spec, setup)
    rss_before = current_rss_mb()
    times = []
    for i, idx in enumerate(setup["batches"]):
        started = time.perf_counter()
        step(idx)
        if i >= spec["warmup"]:
            times.append(time.perf_counter() - started)
    return {
        "system": system, "step_s_median": statistics.median(times),
        "step_s_mean": statistics.fmean(times), "steps": len(times),
        "rss_before_steps_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }  # fmt: skip


def _paired_child(system: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Every step system in one process, taking turns on each batch: on a shared, noisy machine
    the others' load then weighs on all systems alike, and the ratios stay comparable."""
    setup = _step_setup(spec)
    systems = tuple(spec.get("paired") or STEP_SYSTEMS)
    steppers = {s: _stepper(s, spec, setup)[1] for s in systems}
    times: dict[str, list[float]] = {s: [] for s in systems}
    for i, idx in enumerate(setup["batches"]):
        order = list(systems[i % len(systems) :] + systems[: i % len(systems)])
        for s in order:
            started = time.perf_counter()
            steppers[s](idx)
            if i >= spec["warmup"]:
                times[s].append(time.perf_counter() - started)
    base = times["step:non-private"]
    return {
        "system": system,
        "step_s_median": {s: statistics.median(t) for s, t in times.items()},
        "ratio_median_of_pairs": {
            s: statistics.median(a / b for a, b in zip(t, base, strict=True))
            for s, t in times.items()
        },
        "steps": len(base),
        "mean_padded_length": statistics.fmean(
            len(setup["encoded"].input_ids[idx[0]]) for idx in setup["batches"]
        ),
    }  # fmt: skip


class _LogProgress:
    """Progress as timestamped lines on stderr (the child's log file): every validation and
    every tenth step, so a long run can be followed with ``tail -f``."""

    def start(self, task: str, *, total: int | None = None, completed: int = 0) -> None:
        self.total, self.done = total, completed
        self.message(f"{task}: {completed}/{total}")

    def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
        self.done += amount
        if self.done % 10 == 0:
            figures = ", ".join(f"{k} {v:.4g}" for k, v in fields.items() if isinstance(v, float))
            self.message(f"{task}: {self.done}/{self.total} {figures}")

    def message(self, text: str) -> None:
        print(f"{datetime.now(UTC):%H:%M:%S} {text}", file=sys.stderr, flush=True)

    def end(self, task: str) -> None:
        self.message(f"{task}: end")


def _train_child(system: str, spec: dict[str, Any]) -> dict[str, Any]:
    import trustune
    from trustune.privacy.audit import audit_privacy

    overfit = system == "train:overfit"
    train = {
        "epochs": spec["overfit_epochs"] if overfit else spec["epochs"],
        "batch_size": spec["batch_size"], "lr": spec["lr"], "seed": 42,
        "evaluate_every": spec["evaluate_every"],
        "early_stopping_patience": spec["early_stopping_patience"],
    }  # fmt: skip
    privacy: dict[str, Any] = {}
    if system.startswith("train:dp"):
        privacy = {"epsilon": 8.0 if system == "train:dp-eps8" else 3.0}
        train.update(
            lr=spec["dp_lr"], max_grad_norm=spec["dp_clip"],
            gradient_accumulation_steps=spec["dp_logical_batch"] // spec["batch_size"],
        )  # fmt: skip
        if spec.get("dp_head_lr"):
            train["head_lr"] = spec["dp_head_lr"]
        train["trainable"] = spec.get("dp_trainable", "all")
    if overfit:  # validated once at the end: the model kept is the last, most overfit one
        train.update(early_stopping_patience=0, evaluate_every=10**9)
    config = trustune.RunConfig.from_dict({
        "data": {"train_file": spec["overfit_file" if overfit else "train_file"],
                 "validation_file": spec["dev_file"], "max_length": spec["max_length"]},
        "model": {"name": spec["model"]}, "train": train, "privacy": privacy,
    })  # fmt: skip
    output = Path(spec["work"]) / system.replace(":", "-")
    started = time.perf_counter()
    run = trustune.finetune(
        config=config, output=output, overwrite=True, measure_latency=False,
        progress=_LogProgress(),  # type: ignore[arg-type]
    )  # fmt: skip
    wall = time.perf_counter() - started
    test = run.classifier.evaluate(spec["test_file"], measure_latency=False)
    audit = audit_privacy(
        output, members=spec["overfit_members" if overfit else "members_file"],
        non_members=spec["non_members_file"], limit=spec["audit_rows"],
        neighbour_count=spec["neighbours"], bootstrap=spec["bootstrap"],
    )  # fmt: skip
    training = run.manifest.to_dict()["training"]
    return {
        "system": system, "config": config.to_dict(), "wall_s": wall,
        "loop_samples_per_s": training["loop_samples_per_s"], "steps": training["steps"],
        "stopped_early": training["stopped_early"], "accuracy_test": test["accuracy"],
        "privacy": {k: v for k, v in run.manifest.to_dict().get("privacy", {}).items()
                    if k not in ("accountant_history", "frozen", "audit")},
        "audit": {k: audit[k] for k in ("auc", "auc_ci", "strongest_attack",
                                         "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")}
        | {"attacks": [{k: v for k, v in a.items() if k != "roc"} for a in audit["attacks"]],
           "members": audit["members"]["used"], "non_members": audit["non_members"]["used"]},
        "peak_rss_mb": peak_rss_mb(),
    }  # fmt: skip


def child_main(system: str, spec_path: Path, result_path: Path) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = json.loads(spec_path.read_text())
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    run = (
        _paired_child
        if system == PAIRED
        else _step_child
        if system.startswith("step:")
        else _train_child
    )
    result = run(system, spec)
    result_path.write_text(json.dumps(result, indent=1))
    return 0


def launch(system: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    name = system.replace(":", "-")
    spec_path, result_path = work / f"{name}.spec.json", work / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, __file__, "--child", system, "--child-spec", str(spec_path),
               "--child-result", str(result_path)]  # fmt: skip
    log_path = work / f"{name}.log"
    print(f"[privacy bench] {system} ... (log: {log_path})", file=sys.stderr, flush=True)
    started, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if done.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(encoding="utf-8")[-2000:]
        print(tail, file=sys.stderr)
        return {"system": system, "ok": False, "error": tail}
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["ok"] = True
    result["process_wall_s"] = time.perf_counter() - started
    # the child's CPU time per wall second out of the cores: below ~1.8 of 2, others were busy
    result["cpu_s_per_wall_s"] = cpu_s / result["process_wall_s"]
    result["load_average_after"] = os.getloadavg()[0]
    print(f"[privacy bench] {system} done in {result['process_wall_s']:.0f} s", file=sys.stderr)
    return result


# -- the report --------------------------------------------------------------------------------


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def get(system: str, key: str) -> Any:
        r = results.get(system, {})
        return r.get(key) if r.get("ok") else None

    base_t, base_m = (
        get("step:non-private", "step_s_median"),
        get("step:non-private", "peak_rss_mb"),
    )
    out: dict[str, Any] = {"step_time_ratio": {}, "peak_memory_ratio": {}, "solo_ratio": {}}
    paired = get(PAIRED, "ratio_median_of_pairs") or {}
    for s in STEP_SYSTEMS[1:]:
        out["solo_ratio"][s] = _ratio(get(s, "step_s_median"), base_t)
        out["step_time_ratio"][s] = paired.get(s, out["solo_ratio"][s])
        out["peak_memory_ratio"][s] = _ratio(get(s, "peak_rss_mb"), base_m)
    acc8 = get("train:dp-eps8", "accuracy_test")
    audit8, overfit = get("train:dp-eps8", "audit"), get("train:overfit", "audit")
    time_ratio, mem_ratio = out["step_time_ratio"]["step:dp"], out["peak_memory_ratio"]["step:dp"]
    out["targets"] = {
        "accuracy_eps8_ge_0.87": None if acc8 is None else acc8 >= 0.87,
        "dp_step_time_le_1.5x": None if time_ratio is None else time_ratio <= 1.5,
        "dp_peak_memory_le_1.5x": None if mem_ratio is None else mem_ratio <= 1.5,
        "audit_auc_eps8_le_0.55": None if audit8 is None else audit8["auc"] <= 0.55,
        "overfit_control_leaks_more": None if audit8 is None or overfit is None
        else overfit["auc_ci"][0] > audit8["auc_ci"][1],
    }  # fmt: skip
    return out


def _growth(result: dict[str, Any]) -> float | None:
    """Peak RSS minus RSS before the first step: what the steps themselves added."""
    peak, before = result.get("peak_rss_mb"), result.get("rss_before_steps_mb")
    return None if peak is None or before is None else max(0.0, peak - before)


def _f(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    r, s, spec = report["results"], report["summary"], report["spec"]
    lines = [
        f"### Differential privacy — {report['date']}",
        "",
        f"Machine: {report['machine']['cpu_model']}, {report['machine']['cpu_count']} cores; torch "
        f"{report['machine']['torch']}, transformers {report['machine']['transformers']}, opacus "
        f"{report['machine']['opacus']}. Command: `{report['command']}`.",
        f"Data: {spec['train_rows']} SST-2 training rows, dev subset of {spec['dev_rows']} for "
        f"model selection, {spec['test_rows']} test rows; max length {spec['max_length']}.",
        "",
        f"**Step time at the same logical batch ({spec['batch_size']})**, median of "
        f"{spec['steps']} steps after {spec['warmup']} warm-up, same batches for every system:",
        "",
        "| system | paired: step (s) | paired: × non-private | alone: step (s) | alone: × "
        "| peak RSS (MB) | × non-private | growth while stepping (MB) | trainable params "
        "| CPU s per s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    paired = r.get(PAIRED, {})
    for system in STEP_SYSTEMS:
        x = r.get(system, {})
        lines.append(
            f"| {system} | {_f((paired.get('step_s_median') or {}).get(system))} "
            f"| {_f((paired.get('ratio_median_of_pairs') or {}).get(system), 2)} "
            f"| {_f(x.get('step_s_median'))} | {_f(s['solo_ratio'].get(system), 2)} "
            f"| {_f(x.get('peak_rss_mb'), 0)} | {_f(s['peak_memory_ratio'].get(system), 2)} "
            f"| {_f(_growth(x), 0)} "
            f"| {x.get('trainable_parameters', '—')} | {_f(x.get('cpu_s_per_wall_s'), 2)} |"
        )
    lines += [
        "",
        "Paired: all systems in one process taking turns on each batch (the ratio is the median "
        "of per-batch ratios; robust to other load on the machine). Alone: each system in its "
        "own process, which is also where peak memory comes from (peak RSS of the whole "
        "process: model, tokenized data and the steps; growth: peak minus RSS before the first "
        "step). CPU s per s: the child's CPU time per wall second (2 = both cores to itself). "
        "The ratios are against fp32 non-private (DP trains in fp32); non-private-bf16 is what "
        "`--precision auto` uses without DP on this CPU.",
    ]
    lines += [
        "",
        "**Training, accuracy and membership inference** (audit: strongest attack, 95% bootstrap CI):",
        "",
        "| system | ε spent (δ) | steps | test accuracy | samples/s | audit AUC | TPR@1%FPR | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system in TRAIN_SYSTEMS:
        x = r.get(system, {})
        if not x.get("ok"):
            lines.append(f"| {system} | {'failed' if x else 'not run'} | | | | | | |")
            continue
        p, a = x["privacy"], x["audit"]
        eps = f"{p['epsilon']:.2f} ({p['delta']:.1e})" if p.get("dp") else "∞ (non-private)"
        lines.append(
            f"| {system} | {eps} | {x['steps']} | {_f(x['accuracy_test'], 4)} "
            f"| {_f(x['loop_samples_per_s'], 1)} | {a['auc']:.3f} [{a['auc_ci'][0]:.3f}, "
            f"{a['auc_ci'][1]:.3f}] ({a['strongest_attack']}) | {_f(a['tpr_at_1pct_fpr'])} "
            f"| {_f(x['peak_rss_mb'], 0)} |"
        )
    lines += ["", "Targets:", ""]
    measured = _target_values(r, s)
    for key, met in s["targets"].items():
        verdict = "met" if met else "not measured" if met is None else "MISSED"
        lines.append(f"- {key}: {verdict} ({measured.get(key, '')})")
    return "\n".join(lines) + "\n"


def _target_values(r: dict[str, Any], s: dict[str, Any]) -> dict[str, str]:
    """The measured value behind each target, for the Markdown."""

    def audit(system: str) -> str:
        a = r.get(system, {}).get("audit")
        return "—" if not a else f"AUC {a['auc']:.3f} [{a['auc_ci'][0]:.3f}, {a['auc_ci'][1]:.3f}]"

    return {
        "accuracy_eps8_ge_0.87": f"ε=8 test accuracy {_f(r.get('train:dp-eps8', {}).get('accuracy_test'), 4)}",
        "dp_step_time_le_1.5x": f"{_f(s['step_time_ratio'].get('step:dp'), 2)}× non-private",
        "dp_peak_memory_le_1.5x": f"{_f(s['peak_memory_ratio'].get('step:dp'), 2)}× non-private",
        "audit_auc_eps8_le_0.55": f"ε=8: {audit('train:dp-eps8')}",
        "overfit_control_leaks_more": f"overfit control: {audit('train:overfit')} vs ε=8: "
        f"{audit('train:dp-eps8')}",
    }  # fmt: skip


def render_saved(paths: Sequence[Path]) -> int:
    """Merge the results of several invocations (e.g. one per `flock` turn) and print them."""
    reports = [json.loads(path.read_text()) for path in paths]
    merged = dict(reports[0])
    merged["results"] = {k: v for r in reports for k, v in r["results"].items()}
    merged["command"] = "`; `".join(r["command"] for r in reports)
    merged["date"] = " to ".join(dict.fromkeys((reports[0]["date"], reports[-1]["date"])))
    merged["summary"] = summarize(merged["results"])
    print(render_markdown(merged))
    return 0


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm", help="model to train (default: the bundled one)")
    p.add_argument("--train-rows", type=int, default=0, help="training rows (0: all)")
    p.add_argument("--dev-rows", type=int, default=1000, help="dev rows for model selection")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32, help="physical batch (all systems)")
    p.add_argument("--lr", type=float, default=5e-5, help="non-private learning rate")
    p.add_argument("--dp-lr", type=float, default=5e-4, help="DP learning rate")
    p.add_argument(
        "--dp-head-lr", type=float, default=0.0,
        help="DP learning rate of the classification head (0: --dp-lr)",
    )  # fmt: skip
    p.add_argument(
        "--dp-trainable", default="all", choices=("all", "bitfit"),
        help="weights the DP trainings update (bitfit: biases, LayerNorm and the head)",
    )  # fmt: skip
    p.add_argument("--dp-clip", type=float, default=0.1, help="DP per-example clipping norm C")
    p.add_argument("--dp-logical-batch", type=int, default=256, help="DP examples per step")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument(
        "--evaluate-every", type=int, default=0,
        help="validate every N optimizer steps in the trainings (0: once per epoch)",
    )  # fmt: skip
    p.add_argument(
        "--early-stopping-patience", type=int, default=2,
        help="validations without improvement before a training stops (0: never)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=int, default=0,
        help="torch threads per child (0: torch's default); 1 lets two invocations share 2 cores",
    )  # fmt: skip
    p.add_argument("--audit-rows", type=int, default=1000, help="members and non-members each")
    p.add_argument("--neighbours", type=int, default=4)
    p.add_argument("--bootstrap", type=int, default=500)
    p.add_argument("--overfit-rows", type=int, default=500)
    p.add_argument("--overfit-epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=12, help="measured steps per step system")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--systems", default=",".join((PAIRED, *STEP_SYSTEMS, *TRAIN_SYSTEMS)))
    p.add_argument(
        "--paired", default=",".join(STEP_SYSTEMS),
        help="step systems the paired run interleaves (step:non-private is the baseline)",
    )  # fmt: skip
    p.add_argument(
        "--render", type=Path, nargs="+",
        help="only re-render the Markdown of results JSON files (several: merged, later wins)",
    )  # fmt: skip
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-spec", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.child_spec, args.child_result)
    if args.render:
        return render_saved(args.render)
    texts, labels = read_tsv(DATA / "train.tsv")
    dev_texts, dev_labels = read_tsv(DATA / "dev.tsv")
    order = list(range(len(texts)))
    random.Random(42).shuffle(order)
    n = args.train_rows or len(texts)
    used, unused = order[:n], order[n:]
    work = Path(tempfile.mkdtemp(prefix="privacy-bench-"))
    print(f"[privacy bench] work directory: {work}", file=sys.stderr, flush=True)
    dev_order = list(range(len(dev_texts)))
    random.Random(43).shuffle(dev_order)
    dev_pick, dev_rest = dev_order[: args.dev_rows], dev_order[args.dev_rows :]
    # non-members: training rows no model saw, else dev rows outside the selection subset
    outside = [(texts[i], labels[i]) for i in unused] or [
        (dev_texts[i], dev_labels[i]) for i in dev_rest
    ]  # fmt: skip
    used_texts = {texts[i] for i in used}
    outside = [(t, y) for t, y in outside if t not in used_texts][: args.audit_rows]
    members = used[: args.audit_rows]
    overfit = used[: args.overfit_rows]
    spec: dict[str, Any] = {
        "work": str(work), "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "dp_lr": args.dp_lr, "dp_head_lr": args.dp_head_lr, "dp_trainable": args.dp_trainable, "dp_clip": args.dp_clip, "dp_logical_batch": args.dp_logical_batch,
        "max_length": args.max_length, "audit_rows": args.audit_rows,
        "evaluate_every": args.evaluate_every, "threads": args.threads,
        "early_stopping_patience": args.early_stopping_patience,
        "neighbours": args.neighbours, "bootstrap": args.bootstrap,
        "overfit_epochs": args.overfit_epochs, "steps": args.steps, "warmup": args.warmup,
        "paired": ["step:non-private", *[s for s in args.paired.split(",") if s and s != "step:non-private"]],
        "train_rows": n, "dev_rows": len(dev_pick), "test_rows": 872,
        "train_file": str(write_tsv(work / "train.tsv", [texts[i] for i in used], [labels[i] for i in used])),
        "dev_file": str(write_tsv(work / "dev.tsv", [dev_texts[i] for i in dev_pick], [dev_labels[i] for i in dev_pick])),
        "test_file": str(DATA / "test.tsv"),
        "members_file": str(write_tsv(work / "members.tsv", [texts[i] for i in members], [labels[i] for i in members])),
        "non_members_file": str(write_tsv(work / "non_members.tsv", [t for t, _ in outside], [y for _, y in outside])),
        "overfit_file": str(write_tsv(work / "overfit.tsv", [texts[i] for i in overfit], [labels[i] for i in overfit])),
        "overfit_members": str(work / "overfit.tsv"),
    }  # fmt: skip
    systems = [s for s in args.systems.split(",") if s]
    results = {system: launch(system, spec, work) for system in systems}
    now = datetime.now(UTC)
    report = {
        "benchmark": "privacy", "date": now.isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/privacy.py", *(argv or sys.argv[1:])]),
        "machine": machine_info(), "load_average_at_end": os.getloadavg(), "spec": spec,
        "results": results,
    }  # fmt: skip
    report["summary"] = summarize(results)
    markdown = render_markdown(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"privacy-{stamp}.json").write_text(json.dumps(report, indent=1))
    (RESULTS / f"privacy-{stamp}.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
