"""The `trustune` command: subcommands, one-line errors with exit code 2, --debug tracebacks."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from rich.text import Text

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
from trustune.messages import shortened
from trustune.version import __version__

__all__ = ["build_parser", "main"]

_COMMANDS = (
    *(demo, train, evaluate, predict, explain, report),
    __import__("trustune.cli.generate", fromlist=["add_parser"]),  # text from a chat run
    __import__("trustune.cli.chat", fromlist=["add_parser"]),  # a terminal chat with a chat run
    __import__("trustune.cli.prune", fromlist=["add_parser"]),  # deletes a run's checkpoints
    __import__("trustune.cli.runs", fromlist=["add_parser"]),  # list and compare runs
    __import__("trustune.cli.tune", fromlist=["add_parser"]),  # hyperparameter search (Optuna)
    __import__("trustune.cli.compress", fromlist=["add_parser"]),  # ONNX, int8, pruning, ...
    __import__("trustune.cli.compare", fromlist=["add_parser"]),  # runs side by side: speed, size
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
    """No transformers notices or hub download bars, without importing transformers (seconds)
    for the commands that never load a model: it reads these variables when first imported."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    transformers = sys.modules.get("transformers")
    if transformers is not None:  # imported already (main() called from Python)
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()


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
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as e:
        if args.debug:
            raise
        if isinstance(e, TrustuneError):
            message, code = str(e), e.exit_code
        else:
            message, code = _last_resort(e, args)
        label = "error:" if code != 1 else "internal error:"
        err_console.print(
            Text.assemble((label, "bold red"), " ", shortened(message, limit=_MESSAGE_LIMIT)),
            soft_wrap=True,
        )
        return code


_MESSAGE_LIMIT = 2000
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXT = ("no space left on device", "disk quota exceeded", "storagefull")


def _no_space(e: BaseException) -> OSError | BaseException | None:
    """The error in ``e``'s chain that says the disk is full (libraries wrap OSError)."""
    seen: BaseException | None = e
    for _ in range(8):  # a bounded walk: chains can loop
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return seen
        if any(marker in str(seen).lower() for marker in _NO_SPACE_TEXT):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _last_resort(e: Exception, args: argparse.Namespace) -> tuple[str, int]:
    """A named one-line message for failures that are not trustune's own errors."""
    full = _no_space(e)
    if full is not None:
        filename = getattr(full, "filename", None)
        where = filename or getattr(args, "output", None) or "the output"
        return (
            f"no space left on device writing {where}; free space or choose another --output",
            2,
        )
    if isinstance(e, RecursionError):
        return (
            "the input is nested too deeply to process (RecursionError); flatten it or check "
            "that it is the file you meant",
            2,
        )
    if isinstance(e, MemoryError):
        return (
            "out of memory (MemoryError); use a smaller input or --batch-size, or a machine with "
            "more memory",
            2,
        )
    return f"{type(e).__name__}: {e} (rerun with --debug for the traceback)", 1


if __name__ == "__main__":
    sys.exit(main())
