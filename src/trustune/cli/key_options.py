"""The key flags shared by every command that opens, encrypts or verifies a run.

``--key-file K`` or ``--passphrase`` (asked in the terminal, or ``TRUSTUNE_PASSPHRASE``); without
either, ``TRUSTUNE_KEY_FILE`` / ``TRUSTUNE_KEY`` / ``TRUSTUNE_PASSPHRASE`` are used.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

from trustune.cli.common import add_run_argument
from trustune.cli.render import BarProgress
from trustune.errors import ConfigError, MissingKeyError, SecurityError

if TYPE_CHECKING:
    from trustune.security.keys import KeySource, Passphrase

__all__ = [
    "ENV_NEW_PASSPHRASE",
    "ENV_PUBLIC_KEY",
    "add_key_arguments",
    "add_new_key_arguments",
    "add_public_key_argument",
    "add_sealing_arguments",
    "key_from_args",
    "new_key_from_args",
    "progress_from_args",
    "public_key_from_args",
    "required_key_from_args",
]

ENV_NEW_PASSPHRASE = "TRUSTUNE_NEW_PASSPHRASE"
ENV_PUBLIC_KEY = "TRUSTUNE_PUBLIC_KEY"
# The names trustune.security.keys reads (tests/test_cli_startup.py checks they agree): that
# package is imported only when a key is read, as it brings numpy and pandas into every start-up.
ENV_KEY_FILE = "TRUSTUNE_KEY_FILE"
ENV_KEY = "TRUSTUNE_KEY"
ENV_PASSPHRASE = "TRUSTUNE_PASSPHRASE"


def add_key_arguments(parser: argparse.ArgumentParser, *, purpose: str) -> None:
    """``--key-file`` and ``--passphrase``; ``purpose`` ends the help ("to open an encrypted run")."""
    parser.add_argument(
        "--key-file", metavar="KEY",
        help=f"key file (from `trustune keygen`) {purpose}; default: ${ENV_KEY_FILE}, or the key "
        f"text in ${ENV_KEY}",
    )  # fmt: skip
    parser.add_argument(
        "--passphrase", action="store_true",
        help=f"use a passphrase instead of a key file {purpose}: read from ${ENV_PASSPHRASE}, "
        "or asked in the terminal",
    )  # fmt: skip


def add_sealing_arguments(parser: argparse.ArgumentParser, *, purpose: str, output: str) -> None:
    """What encrypt and decrypt share: RUN, the key flags, ``--output DIR`` and ``--quiet``."""
    add_run_argument(parser)
    add_key_arguments(parser, purpose=purpose)
    parser.add_argument(
        "--output", metavar="DIR", help=f"write the {output} run here (default: in place)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def progress_from_args(args: argparse.Namespace) -> BarProgress:
    """A progress bar on stderr unless ``--quiet`` or stderr is no terminal."""
    return BarProgress(enabled=not args.quiet and sys.stderr.isatty())


def add_new_key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--new-key-file", metavar="KEY", help="the new key file (from `trustune keygen`)"
    )
    parser.add_argument(
        "--new-passphrase", action="store_true",
        help=f"a new passphrase instead: read from ${ENV_NEW_PASSPHRASE}, or asked in the terminal",
    )  # fmt: skip


def add_public_key_argument(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--public-key", metavar="P", required=required,
        help="Ed25519 public key (S.pub from `trustune signing-keygen`)"
        + ("" if required else f": refuse the run unless its signature verifies; default: ${ENV_PUBLIC_KEY}"),
    )  # fmt: skip


def _ask(env: str, *, what: str, confirm: bool) -> Passphrase:
    from trustune.security.keys import Passphrase

    text = os.environ.get(env)
    if text:
        return Passphrase(text)
    if not sys.stdin.isatty():
        raise MissingKeyError(f"{what}: set ${env}, or run in a terminal to be asked")
    first = getpass.getpass(f"{what}: ")
    if confirm and getpass.getpass(f"{what} (again): ") != first:
        raise SecurityError("the two passphrases differ; nothing was changed")
    return Passphrase(first)


def key_from_args(
    args: argparse.Namespace, *, required: bool, confirm: bool = False
) -> KeySource | None:
    """The key the flags (or the environment) name; ``confirm`` asks a new passphrase twice."""
    from trustune.security.keys import key_from_env, read_key_file

    if args.key_file and args.passphrase:
        raise ConfigError("give --key-file or --passphrase, not both")
    if args.key_file:
        return read_key_file(args.key_file, what="the --key-file value")
    if args.passphrase:
        return _ask(ENV_PASSPHRASE, what="passphrase", confirm=confirm)
    key = key_from_env()
    if key is None and required:
        raise MissingKeyError(
            f"no key: pass --key-file KEY or --passphrase, or set ${ENV_KEY_FILE}; create a key "
            "with `trustune keygen --output KEY`"
        )
    return key


def required_key_from_args(args: argparse.Namespace, *, confirm: bool = False) -> KeySource:
    """The key the flags (or the environment) name; none is an error naming the flags."""
    key = key_from_args(args, required=True, confirm=confirm)
    assert key is not None  # required=True raises instead
    return key


def new_key_from_args(args: argparse.Namespace) -> KeySource:
    from trustune.security.keys import read_key_file

    if bool(args.new_key_file) == bool(args.new_passphrase):
        raise ConfigError("give the new key with --new-key-file KEY or --new-passphrase (one)")
    if args.new_key_file:
        return read_key_file(args.new_key_file, what="the --new-key-file value")
    return _ask(ENV_NEW_PASSPHRASE, what="new passphrase", confirm=True)


def public_key_from_args(args: argparse.Namespace) -> str | None:
    """The public-key path of ``--public-key`` or ``$TRUSTUNE_PUBLIC_KEY`` (None: no check)."""
    path: str | None = args.public_key or os.environ.get(ENV_PUBLIC_KEY) or None
    return path
