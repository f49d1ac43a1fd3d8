"""`trustune evaluate`: metrics, calibration and speed of a run on a labeled file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.key_options import add_key_arguments, key_from_args
from trustune.cli.render import BarProgress, metrics_table, out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a run on a labeled file",
        description="Accuracy, precision/recall/F1, confusion matrix, ROC-AUC, PR-AUC, calibration "
        "(ECE) and latency/throughput of a run on a labeled file. The result is saved into the run "
        "(metrics.json, manifest, report.html).",
    )
    add_run_argument(p)
    p.add_argument(
        "--data", required=True, metavar="FILE", help="labeled data: CSV, TSV, JSONL or Parquet"
    )
    p.add_argument("--text-column", help="column holding the text (default: as in training)")
    p.add_argument("--label-column", help="column holding the label (default: as in training)")
    p.add_argument(
        "--skip-bad-rows", action="store_true", help="drop rows with empty text or label"
    )
    p.add_argument("--name", help="name of this evaluation in the run (default: the file's stem)")
    p.add_argument("--no-speed", action="store_true", help="skip latency/throughput measurement")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_key_arguments(p, purpose="to open an encrypted run")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import trustune
    from trustune.run import record_evaluation

    model = trustune.load(args.run, key=key_from_args(args, required=False))
    result = model.evaluate(
        args.data, text_column=args.text_column, label_column=args.label_column,
        skip_bad_rows=args.skip_bad_rows, measure_latency=not args.no_speed,
        progress=BarProgress(enabled=not args.quiet),
    )  # fmt: skip
    name = args.name or Path(args.data).stem
    record_evaluation(Path(args.run), name, result)
    if args.json:
        out_console.print_json(json.dumps(result))
    else:
        for table in metrics_table(result, title=f"{name} ({result['data']['rows']} rows)"):
            out_console.print(table)
        out_console.print(f"saved into {args.run}/metrics.json and {args.run}/report.html")
    return 0
