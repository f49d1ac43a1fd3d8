"""`trustune train`: fine-tune a pretrained model on labeled texts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trustune.cli.common import check_output_path, cut_notice
from trustune.cli.flags import ExamplesFormatter, flag_arguments
from trustune.cli.render import BarProgress, err_console, metrics_table, out_console
from trustune.config import DEFAULT_MAX_CHARS, RunConfig, config_flags, load_config
from trustune.errors import ConfigError

__all__ = [
    "EXAMPLES",
    "add_config_flags",
    "add_parser",
    "add_track_flags",
    "config_groups",
    "config_overrides",
    "given_flags",
]


# The groups of `trustune train --help`: one per config section (in this order), then run control.
_GROUPS = {
    "data": "data (YAML section data)",
    "task": "task (YAML section task)",
    "model": "model (YAML section model)",
    "train": "training (YAML section train)",
    "privacy": "privacy (YAML section privacy)",
}

EXAMPLES = (  # (what it does, the command): shown by --help, parsed by tests/test_cli_terminal.py
    ("one labeled file, part of it held out for validation",
     "trustune train --data tickets.csv --output runs/tickets"),
    ("a validation file, more epochs, a lower learning rate",
     "trustune train --data train.csv --validation dev.csv --epochs 5 --lr 3e-5"),
    ("a YAML config, one value overridden",
     "trustune train --config run.yaml --batch-size 16 --output runs/b16"),
    ("differential privacy (DP-SGD) to epsilon 8",
     "trustune train --data tickets.csv --dp-epsilon 8 --trainable bitfit"),
)  # fmt: skip
_EPILOG = (
    "examples:\n"
    + "".join(f"  # {what}\n  {command}\n" for what, command in EXAMPLES)
    + "\nEvery flag is also a key of the YAML config: --batch-size is train.batch_size."
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a pretrained model on labeled texts",
        usage="%(prog)s [--data FILE | --config YAML] [--output DIR] [options]",
        description="Fine-tune a pretrained transformer on a file of labeled texts and write a run "
        "folder (model, manifest, metrics, report). Flags override --config.",
        epilog=_EPILOG,
        formatter_class=ExamplesFormatter,
    )
    groups = config_groups(p)
    control = p.add_argument_group("output and run control")
    control.add_argument(
        "--config",
        metavar="YAML",
        help="run configuration file (data/model/train/privacy sections)",
    )
    control.add_argument(
        "--output",
        metavar="DIR",
        default="runs/latest",
        help="run folder to write (default: runs/latest)",
    )
    control.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in --output"
    )
    control.add_argument(
        "--overwrite", action="store_true", help="replace an existing run in --output"
    )
    control.add_argument("--quiet", action="store_true", help="no progress bar")
    control.add_argument(
        "--no-speed", action="store_true", help="skip latency/throughput measurement"
    )
    add_track_flags(control)
    add_config_flags(groups)
    p.set_defaults(handler=run)


def add_track_flags(group: argparse._ArgumentGroup) -> None:
    """``--track`` and ``--track-experiment``: run control, never saved in the config (a
    tracking URI may hold credentials)."""
    group.add_argument(
        "--track", action="append", default=[], metavar="SPEC",
        help="also log the run to a tracker (repeatable; none by default): mlflow, mlflow:URI "
        "(e.g. mlflow:sqlite:///runs/mlflow.db), tensorboard (into the run folder) or "
        "tensorboard:DIR",
    )  # fmt: skip
    group.add_argument(
        "--track-experiment", metavar="NAME", default=None,
        help="the MLflow experiment of the tracked run (default: trustune)",
    )  # fmt: skip


def config_groups(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """One help group per config section, in the order of ``_GROUPS``."""
    return {
        section: p.add_argument_group(_GROUPS.get(section, section))
        for section in sorted(
            {section for _, section, _ in config_flags()},
            key=lambda s: (list(_GROUPS).index(s) if s in _GROUPS else len(_GROUPS), s),
        )
    }


def add_config_flags(groups: dict[str, argparse._ArgumentGroup]) -> None:
    """A flag per config field (``--epochs`` sets ``train.epochs``), in its section's group."""
    for flag, section, f in config_flags():
        # not given: no attribute, so that the --config file's value stays
        kwargs = flag_arguments(
            f, flag=flag, dest=f"{section}.{f.name}", negatable=True, suppress_default=True
        )
        groups[section].add_argument(flag, **kwargs)


def config_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config flags given on the command line, by section."""
    overrides: dict[str, dict[str, Any]] = {section: {} for _, section, _ in config_flags()}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            overrides[section][name] = value
    return overrides


def given_flags(args: argparse.Namespace) -> list[str]:
    """The config flags given (``--epochs``, ...) and ``--config``, for refusals of --resume."""
    given = ["--" + k.split(".", 1)[1].replace("_", "-") for k in vars(args) if "." in k]
    return given + (["--config"] if args.config else [])


def run(args: argparse.Namespace) -> int:
    from trustune.run import write_trained_run
    from trustune.train.loop import train_model

    overrides = config_overrides(args)
    config: RunConfig | None = None
    if args.resume:
        given = given_flags(args)
        if given:
            raise ConfigError(
                "--resume continues the configuration saved in the checkpoint; "
                f"drop {', '.join(given)}"
            )
    else:
        base = load_config(args.config) if args.config else RunConfig()
        config = base.with_overrides(overrides)
    output = Path(args.output)
    check_output_path(output, flag="--output", folder=True)  # before hours of training
    from trustune.artifact import read_metrics
    from trustune.tracking import tracking_observers
    from trustune.train.observer import Observers

    watching = Observers(  # before training: a bad --track fails here
        tracking_observers(
            args.track, run_name=output.resolve().name, experiment=args.track_experiment,
            warn=lambda text: err_console.print(f"warning: {text}"),
        )
    )  # fmt: skip
    progress = BarProgress(enabled=not args.quiet)
    try:
        trained = train_model(
            config, output, resume=args.resume, overwrite=args.overwrite, progress=progress,
            observers=watching.observers,
        )  # fmt: skip
        progress.message("writing the run folder and report")
        classifier = write_trained_run(output, trained, measure_latency=not args.no_speed)
    except BaseException as e:
        watching.abort(e)
        raise
    watching.finish(output, read_metrics(output), classifier.manifest)
    training = classifier.manifest.training
    cut = sum(part.chars_cut or 0 for _, part in classifier.manifest.data.splits())
    if cut:
        max_chars = classifier.manifest.setting("data", "max_chars", DEFAULT_MAX_CHARS)
        err_console.print(cut_notice(cut, max_chars))
    from trustune.evaluate.learning import check_learning

    validation = read_metrics(output)["validation"]
    for table in metrics_table(validation, title="validation (best checkpoint)"):
        out_console.print(table)
    learning = check_learning(classifier.manifest, validation)
    if learning.baseline is not None:
        out_console.print(
            f"majority-class baseline (always the most frequent label): {learning.baseline:.3f}"
        )
    for warning in learning.warnings:
        err_console.print(f"warning: {warning}")
    err_console.print(
        f"trained {training.steps} steps in {training.wall_time_s or 0:.0f} s "
        f"({training.train_samples_per_s or 0:.0f} samples/s, {training.precision}); "
        f"best step {training.best_step}{' (stopped early)' if training.stopped_early else ''}"
    )
    privacy = classifier.manifest.privacy
    if privacy is not None and privacy.dp:
        err_console.print(
            f"privacy spent: ε = {privacy.epsilon:.2f} (target {privacy.target_epsilon:g}), "
            f"δ = {privacy.delta:.2g}, {privacy.accountant} accountant"
        )
    from trustune.cli.prune import format_size
    from trustune.train.checkpoint import folder_size

    out_console.print(
        f"run written to {output}/ ({format_size(folder_size(output))})  "
        f"report: {output / 'report.html'}"
    )
    return 0
