"""`trustune verify`: check a run's signature and the hash of every file."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from trustune.cli.common import add_run_argument
from trustune.cli.key_options import add_public_key_argument
from trustune.cli.render import err_console, out_console
from trustune.errors import ConfigError

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a run's signature and file hashes",
        description="Check that trustune.sig is a valid Ed25519 signature of the manifest by the "
        "given public key, and that every file of the run matches the manifest's SHA-256: a "
        "changed, missing or extra file fails (exit code 2). No decryption key is needed. "
        "--min-version and --signed-after refuse an older signed copy of the run (a rollback).",
    )
    add_run_argument(p)
    add_public_key_argument(p, required=True)
    p.add_argument(
        "--min-version", type=int, metavar="N",
        help="refuse a run signed with a lower version (`trustune sign --version`)",
    )  # fmt: skip
    p.add_argument(
        "--signed-after", metavar="DATE",
        help="refuse a run signed before DATE (ISO 8601: 2026-03-01 or 2026-03-01T12:00:00+00:00; "
        "UTC unless it names a zone)",
    )  # fmt: skip
    p.set_defaults(handler=run)


def _parse_date(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--signed-after {text!r} is not an ISO 8601 date; write 2026-03-01 or "
            "2026-03-01T12:00:00+00:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def run(args: argparse.Namespace) -> int:
    from trustune.security import read_public_key, verify_run

    if args.min_version is not None and args.min_version < 1:
        raise ConfigError(f"--min-version must be at least 1, not {args.min_version}")
    signed_after = _parse_date(args.signed_after) if args.signed_after else None
    result = verify_run(
        args.run, read_public_key(args.public_key), min_version=args.min_version,
        signed_after=signed_after,
    )  # fmt: skip
    if result.notice:
        err_console.print(f"note: {result.notice}", soft_wrap=True, markup=False)
    signed = (
        f", version {result.version}, signed {result.signed.isoformat()}"
        if result.version is not None and result.signed is not None
        else ""
    )
    out_console.print(
        f"{args.run}: signature valid (key id {result.key_id}{signed}), {result.files} files match",
        soft_wrap=True,
    )
    return 0
