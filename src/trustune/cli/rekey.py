"""`trustune rekey`: rotate the key of an encrypted run without re-encrypting its payloads."""

from __future__ import annotations

import argparse
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.key_options import (
    add_key_arguments,
    add_new_key_arguments,
    new_key_from_args,
    required_key_from_args,
)
from trustune.cli.render import out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "rekey",
        help="rotate the key of an encrypted run",
        description="Key rotation: unwrap the run's data key with the old key and wrap it under "
        "the new one. Only trustune.json is rewritten (atomically); the sealed payloads and a "
        "signature stay valid, and the run opens with the new key only. Someone who already "
        "holds the unwrapped data key keeps access: to cut that, decrypt and encrypt again.",
    )
    add_run_argument(p)
    add_key_arguments(p, purpose="the run is encrypted with now")
    add_new_key_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.security import rekey_run

    key = required_key_from_args(args)
    new_key = new_key_from_args(args)
    wrap = rekey_run(args.run, key=key, new_key=new_key)
    out_console.print(f"{args.run} now opens with key id {wrap.kek_id} only", soft_wrap=True)
    return 0
