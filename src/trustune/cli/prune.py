"""`trustune prune`: delete the checkpoints of a finished run and say how much space that freed."""

from __future__ import annotations

import argparse
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.render import out_console

__all__ = ["add_parser", "format_size"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "prune",
        help="delete the checkpoints of a finished run",
        description="Delete checkpoints/ of a finished run: step checkpoints (weights and "
        "optimizer state, kept to continue an interrupted run with --resume) and best/ (a copy "
        "of model/). The model, manifest and records stay as they are, so `trustune verify` "
        "still passes. Runs written by this version of trustune delete them when training "
        "ends; this is for older runs.",
    )
    add_run_argument(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="also delete the checkpoints of an unfinished run (it can no longer be resumed)",
    )
    p.add_argument(
        "--signing-key", metavar="S",
        help="for a run whose signature covers its checkpoints: the Ed25519 private key that "
        "signs the pruned run again (a new version)",
    )  # fmt: skip
    p.set_defaults(handler=run)


def format_size(n_bytes: int) -> str:
    """A byte count for people: 695.2 MB, 12.0 kB, 512 B (powers of 1000)."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n_bytes} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def run(args: argparse.Namespace) -> int:
    from trustune.train.checkpoint import prune_run

    key = None
    if args.signing_key:
        from trustune.security import read_signing_key

        key = read_signing_key(args.signing_key)
    pruned = prune_run(args.run, force=args.force, signing_key=key)
    if not pruned.freed_bytes and pruned.signed_version is None:
        out_console.print(f"{args.run} has no checkpoints; nothing to prune", soft_wrap=True)
        return 0
    signed = (
        f"; signed again as version {pruned.signed_version}"
        if pruned.signed_version is not None
        else ""
    )
    out_console.print(
        f"pruned {args.run}: freed {format_size(pruned.freed_bytes)}, the run now takes "
        f"{format_size(pruned.run_bytes)}{signed}",
        soft_wrap=True,
    )
    return 0
