"""Accuracy ablation: which of trustune's training choices costs (or wins) accuracy on SST-2.

Each *arm* fine-tunes the bundled default model (all-MiniLM-L6-v2) on the same seeded slice of
the SST-2 training set, with trustune's defaults but one knob changed, selects the best epoch
on the same slice of ``dev.tsv`` and reports the accuracy on ``test.tsv`` (872 rows). The
``trainer`` arm is the Hugging Face ``Trainer`` (``DataCollatorWithPadding``, fp32, random
batches, best epoch on the same dev slice: ``train_sst2.py``'s ``trainer-default``) on the same
rows and seeds. Every arm runs once per seed (``--seeds``), each in a fresh process; the seed
sets initialisation, dropout and data order, while the rows are the same for every arm and
seed (``--data-seed``).

Accuracy only: the arms' samples/s are recorded, but they are a speed figure only when the
machine was quiet (the notes give the CPU share other work took); speed ratios belong to
``train_sst2.py``.

How to run
----------
From the repository root::

    PYTHONPATH=src .venv/bin/python bench/ablation_sst2.py --train-rows 2000 --epochs 3 \\
        --seeds 1,2
    PYTHONPATH=src .venv/bin/python bench/ablation_sst2.py --arms default,pooler-reinit \\
        --train-rows 6000 --epochs 1 --seeds 1,2

Results go to ``bench/results/ablation_sst2-<timestamp>.json`` (written after every run, so an
interrupted ablation keeps what it finished); a Markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import train_sst2 as harness

RESULTS_DIR = harness.RESULTS_DIR

# Each arm: trustune.finetune keywords on top of the defaults (None: the Trainer).
ARMS: dict[str, dict[str, Any] | None] = {
    "default": {},
    "fp32": {"precision": "fp32"},
    "random-order": {"group_by_length": False},
    "sdpa": {"attention": "sdpa"},
    "no-warmup": {"warmup_ratio": 0.0},
    "no-clipping": {"max_grad_norm": 1e6},
    "lr-2e-5": {"lr": 2e-5},
    "lr-5e-5": {"lr": 5e-5},
    "lr-1e-4": {"lr": 1e-4},
    "lr-2e-4": {"lr": 2e-4},
    "head-lr-1e-3": {"head_lr": 1e-3},
    "pooler-reinit": {"pooler": "reinit"},
    "trainer": None,
}


def run_arm(spec: dict[str, Any]) -> dict[str, Any]:
    """One arm and seed in this process: train, then the accuracy of the saved run."""
    overrides = ARMS[spec["arm"]]
    if overrides is None:
        result = harness.run_trainer({**spec, "system": "trainer-default"})
        return {k: result.get(k) for k in ("accuracy_test", "accuracy_dev", "wall_time_s")} | {
            "config": "Trainer: fp32, random batches, DataCollatorWithPadding",
            "epoch_history": result.get("epoch_history"),
        }
    import trustune

    keywords: dict[str, Any] = {
        "epochs": spec["epochs"],
        "batch_size": spec["batch_size"],
        "max_length": spec["max_length"],
        "seed": spec["seed"],
        **({"lr": spec["lr"]} if spec.get("lr") is not None else {}),
        **overrides,
    }
    with tempfile.TemporaryDirectory(prefix="ablation-") as out_dir:
        run = trustune.finetune(
            spec["train"],
            validation=spec["dev"],
            model="minilm",
            output=Path(out_dir) / "run",
            overwrite=True,
            **keywords,
        )
        training = dict(run.manifest.to_dict()["training"])
        config = run.manifest.to_dict().get("config", {})
        model = trustune.load(run.path)
        test = model.evaluate(spec["test"], measure_latency=False)
        dev = model.evaluate(spec["dev"], measure_latency=False)
    return {
        "accuracy_test": float(test["accuracy"]),
        "accuracy_dev": float(dev["accuracy"]),
        "wall_time_s": float(training["wall_time_s"]),
        "precision": training.get("precision"),
        "attention": training.get("attention"),
        "best_step": training.get("best_step"),
        "epoch_history": training.get("history"),
        "config": {k: config.get(k) for k in ("train", "model")} if config else keywords,
    }


def child_main(spec_path: Path, result_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    result: dict[str, Any] = {"arm": spec["arm"], "seed": spec["seed"], "ok": False}
    try:
        result.update(run_arm(spec))
        result["ok"] = True
    except BaseException as exc:  # the parent records the failure and goes on
        import traceback

        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result_path.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["ok"] else 1


def launch(spec: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    import os
    import subprocess
    import time

    name = f"{spec['arm']}-seed{spec['seed']}"
    spec_path, result_path = work_dir / f"{name}.spec.json", work_dir / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(harness.REPO_ROOT / "src"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(spec_path),
        str(result_path),
    ]
    print(f"[ablation] === {name} ===", file=sys.stderr, flush=True)
    import resource

    def child_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before, cpu_before, started = harness.cpu_counters(), child_cpu(), time.time()
    proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr, check=False)
    elapsed = time.time() - started
    after = harness.cpu_counters()
    if result_path.exists():
        result: dict[str, Any] = json.loads(result_path.read_text())
    else:
        result = {"arm": spec["arm"], "seed": spec["seed"], "ok": False}
        result["error"] = f"child exited with {proc.returncode} without a result"
    result["process_wall_s"] = elapsed
    _steal, others = harness.noise_shares(before, after, child_cpu() - cpu_before)
    result["cpu_share_used_by_others"] = others
    if result.get("ok") and result.get("wall_time_s"):
        result["samples_per_s"] = spec["train_rows"] * spec["epochs"] / result["wall_time_s"]
    status = f"test {result['accuracy_test']:.4f}" if result.get("ok") else result.get("error")
    print(f"[ablation] {name}: {status} ({elapsed:.0f}s)", file=sys.stderr, flush=True)
    return result


def summarize(runs: list[dict[str, Any]], arms: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    base = [r["accuracy_test"] for r in runs if r.get("ok") and r["arm"] == "default"]
    for arm in arms:
        done = sorted((r for r in runs if r.get("ok") and r["arm"] == arm), key=lambda r: r["seed"])
        if not done:
            continue
        test = [r["accuracy_test"] for r in done]
        dev = [r["accuracy_dev"] for r in done]
        rows.append(
            {
                "arm": arm,
                "seeds": [r["seed"] for r in done],
                "test": test,
                "test_mean": statistics.fmean(test),
                "dev_mean": statistics.fmean(dev),
                "delta_vs_default": statistics.fmean(test) - statistics.fmean(base)
                if base
                else None,
                "samples_per_s": statistics.median(r["samples_per_s"] for r in done),
            }
        )
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        f"{cfg['train_rows']:,} training rows × {cfg['epochs']} epochs, seeds "
        f"{', '.join(map(str, cfg['seeds']))}; best epoch on {cfg['dev_rows']:,} dev rows; test: "
        f"{cfg['test_rows']} rows. Machine: {report['machine'].get('cpu_model')}.",
        "",
        "| arm | test acc. per seed | mean | Δ vs default | dev acc. (mean) | samples/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in report["summary"]:
        per_seed = " / ".join(f"{v:.2%}" for v in row["test"])
        delta = row["delta_vs_default"]
        lines.append(
            f"| {row['arm']} | {per_seed} | {row['test_mean']:.2%} | "
            f"{'—' if delta is None or row['arm'] == 'default' else f'{delta * 100:+.2f}'} | "
            f"{row['dev_mean']:.2%} | {row['samples_per_s']:.0f} |"
        )
    busy = sorted(
        {r["arm"] for r in report["runs"] if (r.get("cpu_share_used_by_others") or 0) > 0.1}
    )
    if busy:
        lines += ["", f"Other work took >10% of the CPU during: {', '.join(busy)} (samples/s there "
                  "are not speed figures)."]  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms")
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--dev-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=None, help="default: trustune's")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--data-seed", type=int, default=0, help="picks the rows")
    parser.add_argument("--data-dir", type=Path, default=harness.DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", nargs=2, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [a for a in args.arms.split(",") if a not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; known: {', '.join(ARMS)}")
    return args


def _slice(src: Path, dst: Path, rows: int | None, seed: int) -> int:
    import numpy as np

    texts, labels = harness.read_tsv(src)
    if rows is not None and rows < len(labels):
        picked = sorted(np.random.default_rng(seed).choice(len(labels), rows, replace=False))
        texts, labels = [texts[i] for i in picked], [labels[i] for i in picked]
    harness.write_tsv(dst, texts, labels)
    return len(labels)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(*args.child)
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    now = dt.datetime.now(dt.UTC).astimezone()
    out_path = args.out or RESULTS_DIR / f"ablation_sst2-{now.strftime('%Y%m%dT%H%M%S')}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ablation_sst2-") as tmp:
        work = Path(tmp)
        data = args.data_dir.resolve()
        train_rows = _slice(data / "train.tsv", work / "train.tsv", args.train_rows, args.data_seed)
        dev_rows = _slice(data / "dev.tsv", work / "dev.tsv", args.dev_rows, args.data_seed)
        test_rows = _slice(data / "test.tsv", work / "test.tsv", None, args.data_seed)
        config = {
            "train_rows": train_rows, "dev_rows": dev_rows, "test_rows": test_rows,
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "seeds": seeds, "data_seed": args.data_seed, "arms": arms,
        }  # fmt: skip
        report: dict[str, Any] = {
            "benchmark": "ablation_sst2",
            "date": now.isoformat(timespec="seconds"),
            "command": harness.command_line(list(sys.argv[1:] if argv is None else argv)),
            "machine": harness.machine_info(),
            "config": config,
            "runs": [],
        }
        base = {
            "train": str(work / "train.tsv"), "dev": str(work / "dev.tsv"),
            "test": str(work / "test.tsv"), "model_dir": str(harness.default_model_dir()),
            "epochs": args.epochs, "batch_size": args.batch_size,
            "lr": args.lr if args.lr is not None else 5e-5,
            "max_length": harness.MAX_LENGTH, "train_rows": train_rows,
        }  # fmt: skip
        for seed in seeds:  # all arms per seed: a cut-short ablation still compares arms
            for arm in arms:
                spec = {**base, "arm": arm, "seed": seed}
                if args.lr is None and ARMS[arm] is not None:
                    spec["lr"] = None  # trustune's own default
                report["runs"].append(launch(spec, work))
                report["summary"] = summarize(report["runs"], arms)
                out_path.write_text(json.dumps(report, indent=2, default=str))
    report["markdown"] = render_markdown(report)
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print(report["markdown"])
    print(f"\n[ablation] results: {out_path}", file=sys.stderr)
    return 0 if all(r.get("ok") for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
