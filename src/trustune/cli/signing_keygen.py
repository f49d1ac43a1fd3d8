"""`trustune signing-keygen`: a new Ed25519 key pair for signing runs."""

from __future__ import annotations

import argparse
from typing import Any

from trustune.cli.render import out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "signing-keygen",
        help="create an Ed25519 key pair for signing runs",
        description="Create an Ed25519 signing key: the private key in S (PEM, mode 0600; keep "
        "it secret) and the public key in S.pub (share it with whoever verifies). Sign with "
        "`trustune sign RUN --signing-key S`, verify with `trustune verify RUN --public-key S.pub`.",
    )
    p.add_argument(
        "--output", required=True, metavar="S", help="the private key file; S.pub is written too"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from trustune.security import generate_signing_key, write_signing_key

    key = generate_signing_key()
    private, public = write_signing_key(args.output, key)
    out_console.print(
        f"signing key written to {private}, public key to {public} (key id "
        f"{key.public_key().key_id})",
        soft_wrap=True,
    )
    return 0
