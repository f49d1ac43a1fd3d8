"""`trustune tune`: search a run's hyperparameters with Optuna and keep the best run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trustune.cli.flags import ExamplesFormatter, add_settings_flags, settings_values
from trustune.cli.render import BarProgress, err_console, out_console
from trustune.cli.train import (
    add_config_flags,
    add_track_flags,
    config_groups,
    config_overrides,
    given_flags,
)

__all__ = ["EXAMPLES", "add_parser"]

EXAMPLES = (  # (what it does, the command): shown by --help
    ("20 trials of the default search space; the best run in runs/tuned/best",
     "trustune tune --data train.csv --trials 20 --output runs/tuned"),
    ("continue a study that was interrupted (Ctrl-C, a killed process)",
     "trustune tune --output runs/tuned --resume"),
    ("train the best configuration again, into another folder",
     "trustune train --config runs/tuned/best.yaml --output runs/final"),
)  # fmt: skip


def add_parser(sub: Any) -> None:
    from trustune.tuning.settings import TuneSettings

    p = sub.add_parser(
        "tune",
        help="search hyperparameters (Optuna) and keep the best run",
        usage="%(prog)s [--data FILE | --config YAML] [--output DIR] [options]",
        description="Run a hyperparameter search: each trial fine-tunes with sampled settings "
        "(TPE sampler), hopeless trials are pruned at a validation, the study is stored in "
        "OUTPUT/study.db (resume with --resume), the best run is kept in OUTPUT/best and its "
        "configuration written to OUTPUT/best.yaml. The data and training flags are those of "
        "trustune train; the searched keys override them.",
        epilog="examples:\n" + "".join(f"  # {what}\n  {command}\n" for what, command in EXAMPLES),
        formatter_class=ExamplesFormatter,
    )
    study = p.add_argument_group("study")
    add_settings_flags(study, TuneSettings)
    control = p.add_argument_group("output and run control")
    control.add_argument("--config", metavar="YAML", help="base run configuration file")
    control.add_argument(
        "--output", metavar="DIR", default="runs/tune",
        help="folder of the study (default: runs/tune)",
    )  # fmt: skip
    control.add_argument("--resume", action="store_true", help="continue the study in --output")
    control.add_argument(
        "--overwrite", action="store_true", help="delete the study in --output and start over"
    )
    add_track_flags(control)  # every trial a tracked run of its own (trial-NNNN)
    control.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(config_groups(p))
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.config import RunConfig, load_config
    from trustune.errors import ConfigError
    from trustune.tuning import TuneSettings, tune

    settings = TuneSettings(**settings_values(args, TuneSettings))
    config = None
    if args.resume:
        given = given_flags(args)
        if given:
            raise ConfigError(
                "--resume continues the configuration stored in the study; drop "
                f"{', '.join(given)} (only --trials and --timeout may change)"
            )
    else:
        base = load_config(args.config) if args.config else RunConfig()
        config = base.with_overrides(config_overrides(args))
    progress = BarProgress(enabled=not args.quiet)
    result = tune(
        config=config, output=Path(args.output), settings=settings, resume=args.resume,
        overwrite=args.overwrite, progress=progress, track=args.track,
        track_experiment=args.track_experiment,
    )  # fmt: skip
    summary = result.summary
    counts = summary["counts"]
    err_console.print(
        f"{len(summary['trials'])} trials: {counts.get('complete', 0)} finished, "
        f"{counts.get('pruned', 0)} pruned, {counts.get('fail', 0)} failed; "
        f"{summary['wall_time_s']:.0f} s of training"
    )
    cost = result.privacy_cost
    if cost is not None:
        err_console.print(
            f"privacy spent by the whole search: ε = {cost['epsilon']:.2f}, "
            f"δ = {cost['delta']:.2g} ({cost['trials']} private trials composed; a single "
            "run's ε does not cover the search, see docs/tuning.md)"
        )
    if result.best_run is None:
        err_console.print("no trial finished; nothing to keep")
        return 1
    params = ", ".join(f"{k} = {_fmt(v)}" for k, v in result.best_params.items())
    best = summary["best"]
    out_console.print(
        f"best: trial {best['number']}, validation {result.metric} "
        f"{_fmt(best['metric_value'])} ({params})"
    )
    out_console.print(
        f"best run: {result.best_run}/  config: {result.output / 'best.yaml'}  "
        f"report: {result.best_run / 'report.html'}"
    )
    return 0


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
