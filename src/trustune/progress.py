"""One progress interface for long work: the CLI renders it as a bar, a server as log lines.

The library never prints; it calls a :class:`Progress` that the caller passes in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Progress"]


class Progress:
    """Receives progress of long work. The base class ignores everything (silent)."""

    def start(self, task: str, *, total: int | None = None, completed: int = 0) -> None:
        """A task begins; ``total`` units are expected, ``completed`` are already done."""

    def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
        """``amount`` more units of ``task`` are done; ``fields`` are live figures (loss, ...)."""

    def message(self, text: str) -> None:
        """A one-line note worth showing to the user (never raw user text)."""

    def end(self, task: str) -> None:
        """The task is over."""
