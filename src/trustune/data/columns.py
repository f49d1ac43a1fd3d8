"""Finding the text and label columns of a table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from trustune.errors import ColumnError
from trustune.messages import shown, shown_names

__all__ = ["Columns", "detect_columns"]

TEXT_NAMES = ("text", "sentence", "review", "content", "message", "body", "document", "utterance")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "intent", "sentiment", "y")


@dataclass(frozen=True)
class Columns:
    """The two columns a classifier needs."""

    text: str
    label: str


def _pick(frame: pd.DataFrame, wanted: str | None, names: tuple[str, ...], role: str) -> str | None:
    columns = list(frame.columns)
    if wanted is not None:
        if wanted not in columns:
            raise ColumnError(
                f"no {role} column {shown(wanted)}; the columns are {shown_names(columns)}. "
                f"Pass --{role}-column with one of them"
            )
        return wanted
    lowered = {c.lower(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def detect_columns(
    frame: pd.DataFrame, *, text_column: str | None = None, label_column: str | None = None
) -> Columns:
    """Use the given columns, or detect them by name, then by content, when unambiguous."""
    text = _pick(frame, text_column, TEXT_NAMES, "text")
    label = _pick(frame, label_column, LABEL_NAMES, "label")
    columns = list(frame.columns)
    if text is None or label is None:
        rest = [c for c in columns if c not in (text, label)]
        if text is None and label is not None and len(rest) == 1:
            text = rest[0]
        elif label is None and text is not None and len(rest) == 1:
            label = rest[0]
        elif text is None and label is None and len(rest) == 2:
            # Two unnamed columns: the one with longer values is the text.
            lengths = {c: frame[c].astype(str).str.len().mean() for c in rest}
            text = max(rest, key=lambda c: lengths[c])
            label = min(rest, key=lambda c: lengths[c])
    if text is None or label is None:
        missing = " and ".join(
            r for r, c in (("--text-column", text), ("--label-column", label)) if c is None
        )
        raise ColumnError(
            f"cannot tell which column holds the {'text' if text is None else 'label'}; "
            f"the columns are {shown_names(columns)}. Pass {missing}"
        )
    if text == label:
        raise ColumnError(
            f"the text and label columns are both {shown(text)}; pick two different ones"
        )
    return Columns(text=text, label=label)
