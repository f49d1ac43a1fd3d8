"""Bounded echoes of user-given values in messages: an error never formats more than it shows."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from typing import Any

__all__ = ["shortened", "shown", "shown_names"]

ELLIPSIS = "…"
_LIMIT = 80

# Formatting work is bounded before the cut: nesting, items and string lengths are capped, so a
# YAML alias bomb or a 5,000-digit integer costs microseconds, not gigabytes.
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 6
_REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = _LIMIT + 2
_REPR.maxlong = _LIMIT


def shortened(text: str, *, limit: int = _LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def shown(value: Any, *, limit: int = _LIMIT) -> str:
    """``repr(value)`` as a message may echo it: at most ``limit`` characters, cut with "…"."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        # str() of a huge int is slow and refused past 4,300 digits; its size says enough.
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # a foreign __repr__ that fails still must not break the message
        text = f"<{type(value).__name__}>"
    return shortened(text, limit=limit)


def shown_names(names: Iterable[Any], *, most: int = 20, limit: int = 40) -> str:
    """A list of names (columns, labels) for a message: the first ``most``, each cut to ``limit``."""
    items: list[str] = []
    more = 0
    for name in names:
        if len(items) < most:
            items.append(shown(name, limit=limit))
        else:
            more += 1
    tail = f", … ({more} more)" if more else ""
    return "[" + ", ".join(items) + tail + "]"
