"""`trustune runs`: experiment tracking without a tracker — list the runs of a folder, compare
runs (the config that differs, the metrics side by side)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from trustune.cli.render import out_console

if TYPE_CHECKING:
    from trustune.runs import Comparison, RunSummary

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "runs",
        help="list the runs of a folder, compare runs",
        description="Experiment tracking without a tracker: every run folder already records "
        "its config and metrics, so listing and comparing runs needs nothing else.",
    )
    actions = p.add_subparsers(dest="runs_action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="one line per run: task, model, data size, main metric, protection",
        description="List the runs in FOLDER (FOLDER/NAME and FOLDER/GROUP/NAME): task, base "
        "model, when it was trained, training rows, epochs, the task's main metric on the "
        "validation set (accuracy, or Spearman for a regression), ε for a differentially "
        "private run, and whether it is encrypted or signed. A run that cannot be read is "
        "listed with the reason.",
    )
    listing.add_argument(
        "folder", metavar="FOLDER", nargs="?", default="runs",
        help="the folder holding the runs (default: runs)",
    )  # fmt: skip
    listing.add_argument("--json", action="store_true", help="print the runs as JSON")
    listing.set_defaults(handler=_run_list)

    compare = actions.add_parser(
        "compare",
        help="the config that differs between runs, and their metrics side by side",
        description="Compare two or more runs: every config key (as in the YAML file, "
        "e.g. train.lr) whose value differs between them, then the validation metrics and "
        "those of every `trustune evaluate`, one column per run.",
    )
    compare.add_argument("runs", metavar="RUN", nargs="+", help="run folders (two or more)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.set_defaults(handler=_run_compare)


def _dash(value: Any) -> str:
    return "—" if value is None else str(value)


def _model(source: str | None) -> str:
    """A local model folder by its name (the JSON keeps the whole path)."""
    if source is None:
        return "—"
    path = Path(source)
    return path.name if path.is_absolute() or source.startswith(".") else source


def _created(created: str | None) -> str:
    """``2026-12-03T08:49:32+00:00`` as ``2026-12-03 08:49`` (manifests hold UTC)."""
    return "—" if created is None else created[:16].replace("T", " ")


def _notes(run: RunSummary) -> str:
    notes = [f"ε {run.epsilon:.2f}"] if run.epsilon is not None else []
    notes += [name for name, flag in (("encrypted", run.encrypted), ("signed", run.signed)) if flag]
    return ", ".join(notes)


def _task_table(task: str, runs: list[RunSummary]) -> Table:
    """The runs of one task, headed by the task's main metric (on the validation set)."""
    metric = runs[0].metric
    count = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    measured = f", {metric} on the validation set" if metric else ""
    table = Table(title=f"{task}: {count}{measured} (times in UTC)")
    table.add_column("run", overflow="fold")
    table.add_column("model", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column(metric or "validation", justify="right")
    notes = [_notes(run) for run in runs]
    if any(notes):
        table.add_column("notes")
    for run, note in zip(runs, notes, strict=True):
        value = "—" if run.value is None else f"{run.value:.4f}"
        cells = [str(run.path), _model(run.model), _created(run.created), _dash(run.train_rows),
                 _dash(run.epochs), value]  # fmt: skip
        table.add_row(*cells, *([note] if any(notes) else []))
    return table


def _run_list(args: argparse.Namespace) -> int:
    from trustune.runs import list_runs

    runs = list_runs(args.folder)
    if args.json:
        print(json.dumps({"folder": args.folder, "runs": [r.to_dict() for r in runs]}, indent=2))
        return 0
    if not runs:
        out_console.print(f"no runs in {args.folder}", soft_wrap=True)
        return 0
    by_task: dict[str, list[RunSummary]] = {}
    for run in runs:
        if run.problem is None and run.task is not None:
            by_task.setdefault(run.task, []).append(run)
    for task, found in by_task.items():
        out_console.print(_task_table(task, found))
    for run in runs:
        if run.problem is not None:
            out_console.print(
                Text.assemble((f"{run.path}: ", "bold"), (run.problem, "red")), soft_wrap=True
            )
    return 0


def _labels(paths: tuple[Path, ...]) -> list[str]:
    """Column headers: the run folders' names, or their paths where two names are the same."""
    names = [p.name or str(p) for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _value(value: Any, absent: bool) -> str:
    if absent:
        return "—"
    return value if isinstance(value, str) else json.dumps(value)


def _figure(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _figures_table(
    title: str, figures: dict[str, tuple[float | None, ...]], labels: list[str]
) -> Table:
    table = Table(title=title)
    table.add_column("metric", overflow="fold")
    for label in labels:
        table.add_column(label, justify="right", overflow="fold")
    for name, values in figures.items():
        table.add_row(name, *map(_figure, values))
    return table


def _print_comparison(comparison: Comparison) -> None:
    labels = _labels(comparison.runs)
    if comparison.config:
        config = Table(title="config: what differs")
        config.add_column("key", overflow="fold")
        for label in labels:
            config.add_column(label, overflow="fold")
        for key, values in comparison.config.items():
            absent = comparison.missing.get(key, (False,) * len(values))
            config.add_row(key, *map(_value, values, absent))
        out_console.print(config)
    else:
        out_console.print("config: the same in every run")
    if comparison.validation:
        out_console.print(_figures_table("validation", comparison.validation, labels))
    for name, figures in comparison.evaluations.items():
        out_console.print(_figures_table(f"evaluation {name}", figures, labels))


def _run_compare(args: argparse.Namespace) -> int:
    from trustune.runs import compare_runs

    comparison = compare_runs(args.runs)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        _print_comparison(comparison)
    return 0
