"""Values read from JSON records (manifest, metrics) that may be partial, old or hand-edited."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["finite", "mapping"]


def mapping(value: Any) -> Mapping[str, Any]:
    """The value when it is a mapping, else an empty one (partial records still render)."""
    return value if isinstance(value, Mapping) else {}


def finite(value: Any) -> float | None:
    """The value as a finite float; None for missing, NaN, bools and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
