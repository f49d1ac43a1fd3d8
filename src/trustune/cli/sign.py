"""`trustune sign`: record every file's SHA-256 in the manifest and sign it (Ed25519)."""

from __future__ import annotations

import argparse
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.render import out_console

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sign",
        help="sign a run's manifest (Ed25519)",
        description="Record the SHA-256 of every file of the run in trustune.json and sign the "
        "manifest with an Ed25519 key (trustune.sig), together with a version number and the "
        "signing time, which `trustune verify --min-version / --signed-after` can require. A "
        "file that no longer matches the hash the manifest already lists is refused, not "
        "signed. Sign after encrypting; later changes to the run (a new evaluation) invalidate "
        "the signature.",
    )
    add_run_argument(p)
    p.add_argument(
        "--signing-key", required=True, metavar="S",
        help="Ed25519 private key (from `trustune signing-keygen --output S`)",
    )  # fmt: skip
    p.add_argument(
        "--version", type=int, metavar="N", dest="signed_version",
        help="the version to sign, at least 1 and never lower than the run's current signature "
        "(default: one more than it, or 1)",
    )  # fmt: skip
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from trustune.security import read_signing_key, sign_run

    key = read_signing_key(args.signing_key)
    path = sign_run(args.run, key, version=args.signed_version)
    version = json.loads(path.read_text(encoding="utf-8"))["version"]
    out_console.print(
        f"signed {args.run} as version {version} (key id {key.public_key().key_id}): {path}",
        soft_wrap=True,
    )
    return 0
