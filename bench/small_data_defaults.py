"""Small-data benchmark: today's fixed defaults against the defaults chosen by data size.

What it measures
----------------
The bundled default model (all-MiniLM-L6-v2) is fine-tuned on small stratified slices of
GLUE SST-2 (``../shared/data/sst2/train.tsv``; 2 classes) and of the demo data set (3 of its
classes: billing, technical, shipping), each slice twice:

``before``
    today's fixed defaults given explicitly: 3 epochs, lr 5e-5, validation_fraction 0.1,
    early stopping patience 2 on validation accuracy, one validation per epoch;
``sized``
    nothing given: ``trustune.train.sizing`` chooses the epochs (at least ~100 optimizer
    steps), the learning rate, the validation size and, below 50 rows, no early stopping and
    selection on the validation loss.

The validation set is split off the slice (a user with 300 labeled rows has no other); the
accuracy and ECE are measured on held-out data: SST-2's ``test.tsv`` (the 872-row GLUE
validation set), and for the demo rows of the same generator outside the slice. Each
(data set, rows, seed) pair trains both arms on the same slice with the same seed.

How to run
----------
From the repository root (one torch thread: the machine is shared)::

    PYTHONPATH=src .venv/bin/python bench/small_data_defaults.py
    PYTHONPATH=src .venv/bin/python bench/small_data_defaults.py --sst2-rows 300 --seeds 0 \\
        --demo-rows none                                           # one quick pair

Results go to ``bench/results/small_data_defaults-<timestamp>.json`` (or ``--out``); a
Markdown table for BENCHMARKS.md is printed to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SST2 = REPO_ROOT.parent / "shared" / "data" / "sst2"
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEMO_CLASSES = ("billing", "technical", "shipping")

# today's defaults, given explicitly so that sizing leaves them alone
BEFORE: dict[str, Any] = {
    "epochs": 3,
    "lr": 5e-5,
    "validation_fraction": 0.1,
    "early_stopping_patience": 2,
    "selection_metric": "accuracy",
    "evaluate_every": 0,
}

# the arms: "before", "sized" (nothing given), and variants of sized used to choose its rules
ARMS: dict[str, dict[str, Any]] = {
    "before": BEFORE,
    "sized": {},
    "sized-nostop": {"early_stopping_patience": 0},
    "sized-loss": {"selection_metric": "loss"},
    "sized-lr5e-5": {"lr": 5e-5},
}


def processor() -> str:
    """The CPU model as lscpu names it (``platform.processor()`` is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def read_sst2(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [(text, label) for text, label in reader]


def stratified(rows: list[tuple[str, str]], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` rows with the classes as balanced as ``n`` allows, drawn with ``seed``."""
    import random

    rng = random.Random(seed)
    by_label: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row[1], []).append(row)
    labels = sorted(by_label)
    picked: list[tuple[str, str]] = []
    for i, label in enumerate(labels):
        share = n // len(labels) + (1 if i < n % len(labels) else 0)
        picked += rng.sample(by_label[label], share)
    rng.shuffle(picked)
    return picked


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("text", "label"))
        writer.writerows(rows)
    return path


def demo_split(n: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``n`` training rows of 3 demo classes, and the generator's other rows of them as test."""
    from trustune.data.demo import generate_demo_rows

    rows = [r for r in generate_demo_rows(rows=1200, seed=100 + seed) if r[1] in DEMO_CLASSES]
    train = stratified(rows, n, seed)
    chosen = set(train)
    return train, [r for r in rows if r not in chosen][:450]


def run_arm(arm: str, train: Path, test: Path, folder: Path, seed: int) -> dict[str, Any]:
    import trustune
    from trustune.progress import Progress

    class Notes(Progress):
        def __init__(self) -> None:
            self.notes: list[str] = []

        def message(self, text: str) -> None:
            if not text.startswith("step "):
                self.notes.append(text)

    options = dict(ARMS[arm])
    notes = Notes()
    started = time.perf_counter()
    run = trustune.finetune(
        train, output=folder / arm, seed=seed, measure_latency=False, progress=notes,
        **options,
    )  # fmt: skip
    wall = time.perf_counter() - started
    result = trustune.load(run.path).evaluate(test, measure_latency=False)
    training = run.manifest.to_dict()["training"]
    return {
        "accuracy": result["accuracy"],
        "ece": result.get("ece"),
        "loss": result.get("loss"),
        "steps": training["steps"],
        "epochs_completed": training["epochs_completed"],
        "best_step": training["best_step"],
        "stopped_early": training["stopped_early"],
        "validation_rows": run.manifest.to_dict()["data"]["validation"]["rows"],
        "lr": run.manifest.to_dict()["config"]["train"]["lr"],
        "train_wall_s": training["wall_time_s"],
        "total_wall_s": round(wall, 1),
        "notes": notes.notes,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| data | rows | seed | before: acc. | ECE | steps | val rows | sized: acc. | ECE | "
        "steps | val rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        b, s = r["before"], r["sized"]
        lines.append(
            f"| {r['data']} | {r['rows']:,} | {r['seed']} | {b['accuracy']:.1%} | {b['ece']:.3f} "
            f"| {b['steps']} | {b['validation_rows']} | **{s['accuracy']:.1%}** | {s['ece']:.3f} "
            f"| {s['steps']} | {s['validation_rows']} |"
        )
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["data"], r["rows"]), []).append(r)
    lines += ["", "| data | rows | seeds | before: mean acc. | sized: mean acc. | gain |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for (data, rows), group in groups.items():
        before = sum(r["before"]["accuracy"] for r in group) / len(group)
        sized = sum(r["sized"]["accuracy"] for r in group) / len(group)
        lines.append(
            f"| {data} | {rows:,} | {len(group)} | {before:.1%} | {sized:.1%} | "
            f"{(sized - before) * 100:+.1f} pt |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sst2-rows", default="24,100,300,1000", help="comma-separated, or none")
    parser.add_argument("--demo-rows", default="24,300", help="comma-separated, or none")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--arms", default="before,sized", help=f"comma-separated of {list(ARMS)}")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sst2", type=Path, default=SST2, help="folder of train.tsv, test.tsv")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--table", type=Path, nargs="+", metavar="JSON",
        help="print the Markdown table of earlier results files (merged per data set, rows and "
        "seed) instead of running",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.table:
        merged: dict[tuple[str, int, int], dict[str, Any]] = {}
        for path in args.table:
            for entry in json.loads(path.read_text(encoding="utf-8"))["results"]:
                key = (entry["data"], entry["rows"], entry["seed"])
                merged.setdefault(key, {}).update(entry)
        complete = [e for _, e in sorted(merged.items()) if "before" in e and "sized" in e]
        print(markdown(complete))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def sizes(text: str) -> list[int]:
        return [] if text == "none" else [int(v) for v in text.split(",")]

    seeds = [int(v) for v in args.seeds.split(",")]
    arms = args.arms.split(",")
    sst2 = read_sst2(args.sst2 / "train.tsv") if sizes(args.sst2_rows) else []
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="small-data-") as tmp:
        root = Path(tmp)
        jobs = [("sst2", n) for n in sizes(args.sst2_rows)] + [
            ("demo", n) for n in sizes(args.demo_rows)
        ]
        for data, n in jobs:
            for seed in seeds:
                folder = root / f"{data}-{n}-{seed}"
                folder.mkdir()
                if data == "sst2":
                    train = write_rows(folder / "train.csv", stratified(sst2, n, seed))
                    test = write_rows(folder / "test.csv", read_sst2(args.sst2 / "test.tsv"))
                else:
                    train_rows, test_rows = demo_split(n, seed)
                    train = write_rows(folder / "train.csv", train_rows)
                    test = write_rows(folder / "test.csv", test_rows)
                entry: dict[str, Any] = {"data": data, "rows": n, "seed": seed}
                for arm in arms:
                    entry[arm] = run_arm(arm, train, test, folder, seed)
                    _log(
                        f"{data} {n} rows seed {seed} {arm}: accuracy "
                        f"{entry[arm]['accuracy']:.4f}, {entry[arm]['steps']} steps, "
                        f"{entry[arm]['total_wall_s']:.0f} s"
                    )
                results.append(entry)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
        "processor": processor(),
        "cpus": os.cpu_count(),
        "torch_threads": args.threads,
        "total_s": round(time.perf_counter() - started, 1),
        "before": BEFORE,
        "results": results,
    }
    out = args.out or RESULTS_DIR / f"small_data_defaults-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    if "before" in arms and "sized" in arms:
        print(markdown(results))
    _log(f"results: {out} ({report['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
