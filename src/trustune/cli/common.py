"""Flags shared by several commands."""

from __future__ import annotations

import argparse

__all__ = ["add_run_argument"]


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", metavar="RUN", help="a run folder written by `trustune train` (runs/NAME)"
    )
