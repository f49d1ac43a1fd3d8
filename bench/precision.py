"""Which precision and attention kernel should trustune train with on this machine?

Fine-tunes the default model on a seeded subset of SST-2 with each combination of
precision (fp32, bf16 autocast) and attention kernel (eager, PyTorch SDPA), interleaved over
repeats, and reports the training loop's samples/s (validation and checkpoints excluded) and
test accuracy. The defaults of ``--precision auto`` / ``--attention auto`` come from this.

    .venv/bin/python bench/precision.py --train-rows 4000 --repeats 2
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import trustune
from trustune.config import RunConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sst2"
COMBINATIONS = [("fp32", "sdpa"), ("fp32", "eager"), ("bf16", "sdpa"), ("bf16", "eager")]


def subset(source: Path, rows: int, seed: int, target: Path) -> Path:
    frame = pd.read_csv(source, sep="\t", quoting=csv.QUOTE_NONE)
    frame.sample(n=min(rows, len(frame)), random_state=seed).to_csv(
        target, sep="\t", index=False, quoting=csv.QUOTE_NONE, escapechar="\\"
    )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-rows", type=int, default=4000)
    parser.add_argument("--dev-rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {f"{p}+{a}": [] for p, a in COMBINATIONS}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        root = Path(tmp)
        train = subset(DATA / "train.tsv", args.train_rows, args.seed, root / "train.tsv")
        dev = subset(DATA / "dev.tsv", args.dev_rows, args.seed, root / "dev.tsv")
        for repeat in range(args.repeats):
            for precision, attention in COMBINATIONS:
                config = RunConfig.from_dict({"model": {"attention": attention}})
                run = trustune.finetune(
                    train, validation=dev, config=config, output=root / "run", overwrite=True,
                    epochs=1, precision=precision, seed=args.seed, measure_latency=False,
                )  # fmt: skip
                accuracy = trustune.load(run.path).evaluate(
                    DATA / "test.tsv", measure_latency=False
                )["accuracy"]
                training = run.manifest.to_dict()["training"]
                results[f"{precision}+{attention}"].append(
                    {
                        "repeat": repeat,
                        "loop_samples_per_s": training["loop_samples_per_s"],
                        "accuracy_test": accuracy,
                    }
                )
                print(f"[precision] {precision}+{attention} repeat {repeat}: "
                      f"{training['loop_samples_per_s']:.1f} samples/s, test {accuracy:.4f}", file=sys.stderr)  # fmt: skip
    base = statistics.median(r["loop_samples_per_s"] for r in results["fp32+sdpa"])
    command = "python bench/precision.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"### Precision and attention kernel — {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        "",
        f"- Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        f"- Command: `{command.strip()}`",
        f"- Data: {args.train_rows} SST-2 train rows (seed {args.seed}), 1 epoch, batch 32, lr 5e-5; "
        f"test = the 872-example set; medians of {args.repeats} interleaved repeats",
        "",
        "| precision + attention | loop samples/s | × fp32+sdpa | test accuracy |",
        "|---|---:|---:|---:|",
    ]
    for name, rows in results.items():
        speed = statistics.median(r["loop_samples_per_s"] for r in rows)
        accuracy = statistics.median(r["accuracy_test"] for r in rows)
        lines.append(f"| {name} | {speed:.1f} | {speed / base:.2f}× | {accuracy:.2%} |")
    print("\n".join(lines))
    out = REPO / "bench" / "results" / f"precision-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
