"""`trustune keygen`: a new random key-encryption key in a key file."""

from __future__ import annotations

import argparse
from typing import Any

from trustune.cli.render import out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "keygen",
        help="create a key file for encrypting runs",
        description="Create a random 256-bit key-encryption key in a key file (mode 0600). "
        "Anyone with the file can decrypt the runs encrypted with it, and they cannot be read "
        "without it: keep it secret, backed up, and out of version control. Use it with "
        "`trustune encrypt RUN --key-file KEY`, or put its path in $TRUSTUNE_KEY_FILE.",
    )
    p.add_argument("--output", required=True, metavar="KEY", help="where to write the key file")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.security import generate_key, write_key_file

    key = generate_key()
    path = write_key_file(args.output, key)
    out_console.print(f"key written to {path} (key id {key.key_id})", soft_wrap=True)
    out_console.print(f"encrypt a run with: trustune encrypt runs/NAME --key-file {path}")
    return 0
