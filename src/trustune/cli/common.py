"""Flags shared by several commands, and the checks on paths they make before any work."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from trustune.config import DEFAULT_MAX_CHARS
from trustune.errors import ConfigError

__all__ = ["add_run_argument", "check_output_path", "cut_notice", "cut_texts", "run_max_chars"]


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", metavar="RUN", help="a run folder written by `trustune train` (runs/NAME)"
    )


def check_output_path(path: Path, *, flag: str, folder: bool) -> None:
    """Fail before any work when ``path`` cannot be written: a file in the way, no permission."""
    if path.exists():
        if folder and not path.is_dir():
            raise ConfigError(f"{flag} {path} is a file, not a folder; choose another {flag}")
        if not folder and path.is_dir():
            raise ConfigError(f"{flag} {path} is a folder; pass a file path")
    full = path.absolute()
    # The nearest existing folder is where the first file or folder gets created.
    for parent in [full, *full.parents] if folder else full.parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise ConfigError(
                f"{flag} {path}: {parent} is a file, not a folder; choose another {flag}"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(
                f"{flag} {path}: no permission to write in {parent}; choose another {flag}"
            )
        return


def run_max_chars(classifier: Any) -> int:
    """The run's ``data.max_chars`` (runs written before it existed: the default)."""
    value = classifier.manifest.setting("data", "max_chars")
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_CHARS


def cut_texts(texts: list[str], max_chars: int) -> tuple[list[str], int]:
    """Texts cut to ``max_chars`` characters, and how many were longer."""
    cut = sum(1 for t in texts if len(t) > max_chars)
    return ([t[:max_chars] for t in texts] if cut else texts), cut


def cut_notice(count: int, max_chars: int) -> str:
    """What the CLI says when texts were cut at ``data.max_chars`` (like token truncation)."""
    return (
        f"{count} text(s) were longer than {max_chars:,} characters (data.max_chars) and were "
        "cut to that length"
    )
