"""`trustune report`: rebuild a run's report.html from its manifest and metrics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.render import out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild a run's report.html",
        description="Rebuild the self-contained report.html of a run from its manifest and metrics.",
    )
    add_run_argument(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.artifact import read_metrics
    from trustune.manifest import read_manifest
    from trustune.report import write_report

    run_dir = Path(args.run)
    # the same sections as every writer: the task's, explanations, privacy (the registry's)
    path = write_report(run_dir, read_manifest(run_dir), read_metrics(run_dir))
    out_console.print(f"report: {path}")
    return 0
