"""`trustune decrypt`: turn an encrypted run back into a plaintext one."""

from __future__ import annotations

import argparse
from typing import Any

from trustune.cli import key_options
from trustune.cli.render import out_console

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
    key_options.add_sealing_arguments(p, purpose="the run was encrypted with", output="plaintext")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.security import decrypt_run

    key = key_options.required_key_from_args(args)
    target = decrypt_run(
        args.run, key=key, output=args.output, progress=key_options.progress_from_args(args)
    )
    out_console.print(f"decrypted into {target}", soft_wrap=True)
    return 0
