"""Finding the text, second-text (pairs) and label columns of a table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from trustune.errors import ColumnError
from trustune.messages import shown, shown_names

__all__ = ["Columns", "detect_columns"]

TEXT_NAMES = ("text", "sentence", "review", "content", "message", "body", "document", "utterance")
LABEL_NAMES = (
    "label", "labels", "class", "category", "target", "intent", "sentiment", "y",
    "score", "similarity", "rating", "relatedness",
)  # fmt: skip
# Column pairs that hold the two texts of a sentence-pair task, first text first.
PAIR_NAMES = (
    ("sentence1", "sentence2"), ("sentence_1", "sentence_2"), ("text1", "text2"),
    ("text_a", "text_b"), ("premise", "hypothesis"), ("question", "answer"),
    ("question1", "question2"), ("query", "passage"), ("query", "document"),
    ("anchor", "positive"),
)  # fmt: skip


@dataclass(frozen=True)
class Columns:
    """The columns a task reads: the text, the label (or score) and, for pairs, the second text."""

    text: str
    label: str
    pair: str | None = None


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


def _known_pair(frame: pd.DataFrame) -> tuple[str, str] | None:
    lowered = {c.lower(): c for c in frame.columns}
    for first, second in PAIR_NAMES:
        if first in lowered and second in lowered:
            return lowered[first], lowered[second]
    return None


def detect_columns(
    frame: pd.DataFrame,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    pair_column: str | None = None,
    pairs: bool | None = None,
) -> Columns:
    """Use the given columns, or detect them by name, then by content, when unambiguous.

    Pairs: ``pair_column`` names the second text; without it a known pair of names
    (``sentence1``/``sentence2``, ``premise``/``hypothesis``, ...) is taken as the two texts,
    unless ``pairs`` is False (a file read as single texts, as its run was trained).
    """
    if pair_column is not None:
        pair_column = _pick(frame, pair_column, (), "text-pair")
    elif text_column is None and pairs is not False:
        known = _known_pair(frame)
        if known is not None:
            text_column, pair_column = known
    if pairs and pair_column is None:
        raise ColumnError(
            f"the run was trained on text pairs, but no second-text column was found; the "
            f"columns are {shown_names(frame.columns)}. Pass --text-pair-column"
        )
    text = _pick(frame, text_column, TEXT_NAMES, "text")
    label = _pick(frame, label_column, LABEL_NAMES, "label")
    columns = list(frame.columns)
    if text is None or label is None:
        rest = [c for c in columns if c not in (text, label, pair_column)]
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
    if pair_column is not None and pair_column in (text, label):
        raise ColumnError(
            f"the second-text column {shown(pair_column)} is also the text or label column; "
            "pick a different --text-pair-column"
        )
    return Columns(text=text, label=label, pair=pair_column)
