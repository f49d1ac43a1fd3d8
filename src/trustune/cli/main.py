"""The `trustune` command: subcommands, one-line errors with exit code 2, --debug tracebacks."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from trustune import __version__
from trustune.cli import (
    audit,
    decrypt,
    demo,
    encrypt,
    evaluate,
    explain,
    keygen,
    keys,
    predict,
    rekey,
    report,
    serve,
    sign,
    signing_keygen,
    train,
    verify,
)
from trustune.errors import TrustuneError

__all__ = ["build_parser", "main"]

_COMMANDS = (
    *(demo, train, evaluate, predict, explain, report),
    audit,  # evidence about a run: `audit privacy` (membership inference), ...
    # protecting a run: keys, encryption at rest, signatures (trustune.security)
    *(keygen, encrypt, decrypt, rekey, signing_keygen, sign, verify),
    serve,  # the run over HTTP: API keys, quotas, audit log (trustune.serve)
    keys,  # the service's API keys in its database (trustune.store)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustune",
        description="Fine-tune a pretrained transformer on labeled texts and get a model you can "
        "trust: evaluated, reported, reproducible.",
    )
    parser.add_argument("--version", action="version", version=f"trustune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, not only before the command.
    debug = "--debug" in raw
    args = parser.parse_args([a for a in raw if a != "--debug"])
    args.debug = debug
    _quiet_libraries()
    from trustune.cli.render import err_console

    try:
        code: int = args.handler(args)
        return code
    except TrustuneError as e:
        if args.debug:
            raise
        err_console.print(
            f"[bold red]error:[/bold red] {e}", markup=True, highlight=False, soft_wrap=True
        )
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as e:
        if args.debug:
            raise
        err_console.print(
            f"[bold red]internal error:[/bold red] {type(e).__name__}: {e} (rerun with --debug for the traceback)",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
