"""`trustune compare`: runs of one task side by side on this machine: size, latency,
throughput and accuracy, recorded into the first run's report."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from rich.table import Table

from trustune.cli.key_options import add_key_arguments, key_from_args
from trustune.cli.render import BarProgress, out_console

if TYPE_CHECKING:
    from trustune.compress.compare import EfficiencyTable

__all__ = ["add_parser"]

DEFAULT_REPEATS = 3  # = trustune.compress.compare.DEFAULT_REPEATS (tests keep them equal)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="measure runs side by side: size, latency, throughput, accuracy",
        description="Measure RUN and every RUN2 on --data in one process on this machine: the "
        "size of the weights, parameters, method and engine, latency at batch 1 (p50, p95), "
        "throughput at batch 32 and the task's metrics, with speed-up, size ratio and metric "
        "difference (points) against the first run. The runs are measured in turn, round-robin "
        "over --repeats, and the medians kept, so noise on the machine hits all alike. The "
        "table is saved into the first run (metrics.json, report.html) unless --no-record.",
    )
    p.add_argument("runs", metavar="RUN", nargs="+", help="run folders of one task; the first "
                   "is the baseline of the ratios")  # fmt: skip
    p.add_argument(
        "--data", required=True, metavar="FILE",
        help="labeled data every run is measured on: CSV, TSV, JSONL or Parquet",
    )  # fmt: skip
    p.add_argument(
        "--repeats", type=int, default=DEFAULT_REPEATS, metavar="N",
        help=f"rounds of measuring every run in turn; the median is kept (default {DEFAULT_REPEATS})",
    )  # fmt: skip
    p.add_argument(
        "--no-record", action="store_true",
        help="only print the table; do not save it into the first run",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_key_arguments(p, purpose="to open encrypted runs")
    p.set_defaults(handler=run)


def _size(n: int) -> str:
    from trustune.cli.prune import format_size

    return format_size(n) if n > 0 else "—"


def _figure(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _render(table: EfficiencyTable) -> Table:
    hardware, threads = table.hardware, table.threads
    thread_text = ", ".join(f"{k} {v}" for k, v in threads.items() if not k.endswith("version"))
    out = Table(
        title=f"{table.task} on {table.data['path']} ({table.data['rows']} rows)",
        caption=f"{hardware.get('model')} ({hardware.get('cores')} cores; threads: "
        f"{thread_text}); median of {table.repeats} repeat(s); ratios against the first run",
    )
    # one column per run and one row per figure: two to four runs fit 80 columns
    out.add_column("")
    for row in table.rows:
        out.add_column(row.name, justify="right", overflow="fold")
    figures = [
        ("method", [r.method for r in table.rows]),
        ("engine", [f"{r.engine} ({r.format})" for r in table.rows]),
        ("size", [_size(r.size_bytes) for r in table.rows]),
        ("params", ["—" if r.parameters is None else f"{r.parameters:,}" for r in table.rows]),
        ("p50 ms (batch 1)", [f"{r.latency_ms_p50:.2f}" for r in table.rows]),
        ("p95 ms (batch 1)", [f"{r.latency_ms_p95:.2f}" for r in table.rows]),
        ("texts/s (batch 32)", [f"{r.throughput_per_s:.1f}" for r in table.rows]),
        (table.metric, [_figure(r.metrics.get(table.metric), ".4f") for r in table.rows]),
        ("Δ pts", [_figure(r.delta_points, "+.2f") for r in table.rows]),
        ("speed-up", [_figure(r.speedup, ".2f", "×") for r in table.rows]),
        ("size ×", [_figure(r.size_ratio, ".2f", "×") for r in table.rows]),
    ]
    for name, values in figures:
        out.add_row(name, *values)
    return out


def run(args: argparse.Namespace) -> int:
    from trustune.compress.compare import measure_efficiency, record_efficiency

    table = measure_efficiency(
        args.runs, args.data, key=key_from_args(args, required=False), repeats=args.repeats,
        progress=BarProgress(enabled=not args.quiet and not args.json),
    )  # fmt: skip
    if not args.no_record:
        record_efficiency(args.runs[0], table)
    if args.json:
        print(json.dumps(table.to_dict(), indent=2))
        return 0
    out_console.print(_render(table))
    if not args.no_record:
        first = args.runs[0]
        out_console.print(
            f"saved into {first}/metrics.json and {first}/report.html", soft_wrap=True
        )
    return 0
