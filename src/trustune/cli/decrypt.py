"""`trustune decrypt`: turn an encrypted run back into a plaintext one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.key_options import add_key_arguments, key_from_args
from trustune.cli.render import BarProgress, out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "decrypt",
        help="decrypt an encrypted run",
        description="Decrypt an encrypted run into a plaintext run (to resume training or hand "
        "it to tools outside trustune). Every chunk is authenticated before it is written; the "
        "output appears complete or not at all. Without --output the run is replaced in place. "
        "To use an encrypted run, you do not need this: predict, evaluate and explain open it "
        "in memory with --key-file.",
    )
    add_run_argument(p)
    add_key_arguments(p, purpose="the run was encrypted with")
    p.add_argument(
        "--output", metavar="DIR", help="write the plaintext run here (default: in place)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.security import decrypt_run

    key = key_from_args(args, required=True)
    assert key is not None
    progress = BarProgress(enabled=not args.quiet and sys.stderr.isatty())
    target = decrypt_run(args.run, key=key, output=args.output, progress=progress)
    out_console.print(f"decrypted into {target}", soft_wrap=True)
    return 0
