"""A documented ``trustune tune`` run on SST-2: what a study finds against the defaults.

The study trains on a seeded slice of the SST-2 training set (``--train-rows``), tunes on the
same-size slice of ``dev.tsv`` as validation (never the test set), and the best run and a run
with trustune's defaults (same rows, same seed) are then evaluated on ``test.tsv`` (872 rows).
The study's wall time is reported with the trial table.

How to run
----------
From the repository root::

    PYTHONPATH=src .venv/bin/python bench/tune_sst2.py --train-rows 2000 --trials 6 --epochs 1

Results go to ``bench/results/tune_sst2-<timestamp>.json``; a Markdown summary is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import train_sst2 as harness


def _slice(src: Path, dst: Path, rows: int, seed: int) -> Path:
    texts, labels = harness.read_tsv(src)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    keep = order[:rows]
    harness.write_tsv(dst, [texts[i] for i in keep], [labels[i] for i in keep])
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=harness.DEFAULT_DATA_DIR)
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--dev-rows", type=int, default=872)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=1, help="fixed epochs of every trial")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    import trustune
    from trustune.tuning import TuneSettings

    work = Path(tempfile.mkdtemp(prefix="tune-sst2-"))
    train = _slice(args.data_dir / "train.tsv", work / "train.tsv", args.train_rows, 0)
    dev = _slice(args.data_dir / "dev.tsv", work / "dev.tsv", args.dev_rows, 0)
    test = args.data_dir / "test.tsv"
    common = {"epochs": args.epochs, "seed": args.seed}
    started = time.monotonic()
    result = trustune.tune(
        data=train, validation=dev, output=work / "study", progress=None,
        settings=TuneSettings(trials=args.trials, startup_trials=3), **common,
    )  # fmt: skip
    study_s = time.monotonic() - started
    assert result.best_run is not None
    tuned = trustune.load(result.best_run).evaluate(str(test))["accuracy"]
    started = time.monotonic()
    trustune.finetune(
        train, validation=dev, output=work / "default", progress=False, measure_latency=False,
        **common,
    )  # fmt: skip
    default_s = time.monotonic() - started
    default = trustune.load(work / "default").evaluate(str(test))["accuracy"]
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "PYTHONPATH=src .venv/bin/python bench/tune_sst2.py " + " ".join(sys.argv[1:]),
        "machine": harness.machine_info(),
        "train_rows": args.train_rows, "dev_rows": args.dev_rows, "epochs": args.epochs,
        "trials": result.summary["trials"], "best": result.summary["best"],
        "importances": result.summary["importances"],
        "study_wall_s": study_s, "default_wall_s": default_s,
        "test_accuracy": {"tuned": tuned, "default": default},
    }  # fmt: skip
    harness.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = harness.RESULTS_DIR / f"tune_sst2-{stamp}.json"
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print("| trial | state | params | dev accuracy | s |\n|---:|---|---|---:|---:|")
    for t in result.summary["trials"]:
        params = ", ".join(f"{k.split('.')[1]}={v:.3g}" if isinstance(v, float) else
                           f"{k.split('.')[1]}={v}" for k, v in t["params"].items())  # fmt: skip
        value = t["metric_value"]
        shown = f"{value:.4f}" if value is not None else "—"
        print(f"| {t['number']} | {t['state']} | {params} | {shown} | {t['wall_time_s']} |")
    print(f"\nstudy {study_s:.0f} s; test accuracy tuned {tuned:.4f} vs defaults {default:.4f} "
          f"(one default run {default_s:.0f} s); {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
