"""`trustune verify`: check a run's signature and the hash of every file."""

from __future__ import annotations

import argparse
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.key_options import add_public_key_argument
from trustune.cli.render import out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a run's signature and file hashes",
        description="Check that trustune.sig is a valid Ed25519 signature of the manifest by the "
        "given public key, and that every file of the run matches the manifest's SHA-256: a "
        "changed, missing or extra file fails (exit code 2). No decryption key is needed.",
    )
    add_run_argument(p)
    add_public_key_argument(p, required=True)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.security import read_public_key, verify_run

    result = verify_run(args.run, read_public_key(args.public_key))
    out_console.print(
        f"{args.run}: signature valid (key id {result.key_id}), {result.files} files match",
        soft_wrap=True,
    )
    return 0
