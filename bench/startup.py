"""Start-up benchmark: wall-clock time of `trustune --help`, this tree against another.

Each round starts `.venv/bin/trustune --help` once per tree (interleaved, so the noise of a shared
machine falls on both); the figure is the median of ``--repeats`` rounds. ``--before-src`` is a
``src`` folder of another version, put first on PYTHONPATH for its runs, e.g. the last commit:

    git archive HEAD src | tar -x -C /tmp/before
    .venv/bin/python bench/startup.py --before-src /tmp/before/src [--repeats 5]

Also listed: which of torch, transformers and accelerate each tree imports for `--help`.
Results: Markdown on stdout, JSON in ``bench/results/startup-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
COMMAND = [str(REPO_ROOT / ".venv" / "bin" / "trustune"), "--help"]
HEAVY = ("torch", "transformers", "accelerate")


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env


def _heavy_imports(src: Path | None) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trustune.cli.main", "--help"],
        env=_env(src), capture_output=True, text=True, check=True,
    )  # fmt: skip
    names = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    return sorted(name for name in names if name in HEAVY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-src", type=Path, help="src folder of the version to compare")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    trees: dict[str, Path | None] = {"this tree": None}
    if args.before_src:
        trees = {"before": args.before_src.resolve(), **trees}
    times: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.repeats):
        for name, src in trees.items():
            start = time.perf_counter()
            subprocess.run(COMMAND, env=_env(src), stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    rows = {
        name: {
            "median_s": round(statistics.median(times[name]), 3),
            "runs_s": [round(t, 3) for t in times[name]],
            "heavy_imports": _heavy_imports(src),
        }
        for name, src in trees.items()
    }
    print("| tree | median s | runs s | imports for --help |\n|---|---:|---|---|")
    for name, row in rows.items():
        runs = ", ".join(f"{t:.2f}" for t in row["runs_s"])
        heavy = ", ".join(row["heavy_imports"]) or "none of " + ", ".join(HEAVY)
        print(f"| {name} | {row['median_s']:.2f} | {runs} | {heavy} |")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"startup-{stamp}.json"
    facts = {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    out.write_text(json.dumps({"trees": rows, **facts}, indent=2) + "\n", encoding="utf-8")
    print(f"\n[startup] results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
