"""Loading labeled data: read, pick columns, check rows, split, fingerprint.

Targets stay raw here (``raw_labels``); the task encodes them (class indices, standardised
scores). Sentence-pair data carry their second texts in ``pairs``.

Texts longer than ``max_chars`` (``data.max_chars``, default 100,000) are cut when read; how
many were cut is ``info["chars_cut"]`` (the manifest records it beside ``truncated``) and,
for texts to predict, ``frame.attrs["chars_cut"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trustune.artifact import file_sha256
from trustune.config import DEFAULT_MAX_CHARS
from trustune.data.columns import TEXT_NAMES, Columns, detect_columns
from trustune.data.labels import LabelMap
from trustune.data.readers import CUT_ROWS, read_table
from trustune.errors import ColumnError, DataError
from trustune.messages import shown, shown_names

__all__ = [
    "LabeledData",
    "TrainingData",
    "file_sha256",
    "load_inputs",
    "load_texts",
    "load_training_data",
    "read_labeled",
    "read_training_file",
    "with_validation",
]


@dataclass
class LabeledData:
    """Texts (and second texts) with raw labels, plus what the manifest records about them.

    ``labels`` holds the targets as the task encoded them (class indices, standardised scores).
    """

    texts: list[str]
    raw_labels: list[Any]
    info: dict[str, Any] = field(default_factory=dict)
    labels: list[Any] = field(default_factory=list)
    cut: list[bool] = field(default_factory=list)  # per text: longer than max_chars, cut
    pairs: list[str] | None = None  # the second text of each example, for pair tasks
    # the structured examples of a generation task (conversations, completions, plain texts;
    # trustune.data.conversations), one per text; ``texts`` then holds their plain rendering
    examples: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def encode(self, label_map: LabelMap, *, source: str) -> None:
        """Fill ``labels`` with class indices and ``info['class_counts']``."""
        self.labels = label_map.encode(self.raw_labels, source=source)
        counts = np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(label_map))
        self.info["class_counts"] = {
            str(n): int(c) for n, c in zip(label_map.names, counts, strict=True)
        }

    def subset(self, indices: np.ndarray, **info: Any) -> LabeledData:
        cut = [self.cut[i] for i in indices] if self.cut else []
        return LabeledData(
            texts=[self.texts[i] for i in indices],
            raw_labels=[self.raw_labels[i] for i in indices],
            info={**self.info, "rows": len(indices), "chars_cut": sum(cut), **info},
            cut=cut,
            pairs=None if self.pairs is None else [self.pairs[i] for i in indices],
            examples=None if self.examples is None else [self.examples[i] for i in indices],
        )


@dataclass
class TrainingData:
    """Everything fine-tuning needs from the data side (targets raw until the task encodes them)."""

    train: LabeledData
    validation: LabeledData
    columns: Columns


def _describe_rows(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:8])
    return f"{shown}{' ...' if len(rows) > 8 else ''}"


def _text_stats(texts: list[str]) -> dict[str, float]:
    if not texts:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return {
        "mean": round(float(lengths.mean()), 1),
        "p50": float(np.percentile(lengths, 50)),
        "p95": float(np.percentile(lengths, 95)),
        "max": float(lengths.max()),
    }


def _column_texts(frame: pd.DataFrame, column: str, max_chars: int) -> tuple[list[str], np.ndarray]:
    """A column's values as strings cut to ``max_chars``, and the mask of cut ones."""
    texts = [
        "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in frame[column]
    ]
    cut = np.zeros(len(texts), dtype=bool)
    cut[list(frame.attrs.get(CUT_ROWS, {}).get(column, []))] = True
    for i, t in enumerate(texts):  # a non-string text (a number) is cut after str()
        if len(t) > max_chars:
            texts[i], cut[i] = t[:max_chars], True
    return texts, cut


def _keep_rows(
    frame: pd.DataFrame, text: str, label: str | None, *, path: Path, skip_bad_rows: bool,
    max_chars: int, pair: str | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray, list[str] | None]:  # fmt: skip
    """Mask of usable rows, all texts as strings (cut to ``max_chars``), mask of cut texts,
    and the second texts of pairs (None without a pair column)."""
    texts, cut = _column_texts(frame, text, max_chars)
    bad = np.fromiter((not t.strip() for t in texts), dtype=bool, count=len(texts))
    seconds = None
    if pair is not None:
        seconds, pair_cut = _column_texts(frame, pair, max_chars)
        cut |= pair_cut
        bad |= np.fromiter((not t.strip() for t in seconds), dtype=bool, count=len(seconds))
    what = "an empty text"
    if label is not None:
        labels = frame[label]
        bad |= (labels.isna() | (labels.astype(str).str.strip() == "")).to_numpy()
        what = "an empty text or label"
    bad_rows = [int(i) + 1 for i in np.flatnonzero(bad)]
    if bad_rows and not skip_bad_rows:
        raise DataError(
            f"{path}: {len(bad_rows)} row(s) have {what} (data rows {_describe_rows(bad_rows)}, "
            "counting from 1 after the header). Fix them or pass --skip-bad-rows"
        )
    return ~bad, texts, cut, seconds


def read_labeled(
    path: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    pair_column: str | None = None,
    pairs: bool | None = None,
    skip_bad_rows: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[LabeledData, Columns]:
    """Read one labeled file; empty texts/labels are an error naming the rows (or skipped).

    ``pairs``: True requires a second-text column, False reads single texts even where the
    columns look like pairs, None detects (see :func:`~trustune.data.detect_columns`).
    """
    p = Path(path)
    frame = read_table(p, max_chars=max_chars)
    columns = detect_columns(
        frame, text_column=text_column, label_column=label_column, pair_column=pair_column,
        pairs=pairs,
    )  # fmt: skip
    keep, all_texts, all_cut, all_pairs = _keep_rows(
        frame, columns.text, columns.label, path=p, skip_bad_rows=skip_bad_rows,
        max_chars=max_chars, pair=columns.pair,
    )  # fmt: skip
    texts = [t for t, k in zip(all_texts, keep, strict=True) if k]
    seconds = None if all_pairs is None else [t for t, k in zip(all_pairs, keep, strict=True) if k]
    cut = all_cut[keep].tolist()
    labels = frame[columns.label].to_numpy()[keep].tolist()
    skipped = int((~keep).sum())
    if not texts:
        raise DataError(f"{p} has no usable rows")
    info = {
        "path": str(p),
        "sha256": file_sha256(p),
        "rows": len(texts),
        "skipped_rows": skipped,
        "text_chars": _text_stats(texts),
        "chars_cut": sum(cut),
    }
    return LabeledData(texts=texts, raw_labels=labels, info=info, cut=cut, pairs=seconds), columns


def load_texts(
    path: str | Path, *, text_column: str | None = None, skip_bad_rows: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[list[str], pd.DataFrame]:  # fmt: skip
    """Read texts to predict, with the file's other columns kept alongside (rows aligned).

    ``frame.attrs["chars_cut"]`` counts the kept texts that were cut to ``max_chars``.
    """
    texts, _, frame = load_inputs(
        path, text_column=text_column, skip_bad_rows=skip_bad_rows, max_chars=max_chars
    )
    return texts, frame


def load_inputs(
    path: str | Path, *, text_column: str | None = None, pair_column: str | None = None,
    pairs: bool = False, skip_bad_rows: bool = False, max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[list[str], list[str] | None, pd.DataFrame]:  # fmt: skip
    """Texts to predict, their second texts when ``pairs`` (a run trained on pairs), and the
    file's columns alongside (rows aligned); ``frame.attrs["chars_cut"]`` counts cut rows."""
    p = Path(path)
    frame = read_table(p, max_chars=max_chars)
    if pairs:
        known = _pair_columns(frame, text_column, pair_column)
        text_column, pair_column = known
    if text_column is not None and text_column not in frame.columns:
        raise ColumnError(
            f"no text column {shown(text_column)}; the columns are "
            f"{shown_names(frame.columns)}. Pass --text-column with one of them"
        )
    if text_column is None:
        by_name = {c.lower(): c for c in frame.columns}
        named = [by_name[n] for n in TEXT_NAMES if n in by_name]
        if named:
            text_column = named[0]
        elif frame.shape[1] == 1:
            text_column = str(frame.columns[0])
        else:
            text_column = detect_columns(frame).text
    keep, texts, cut, seconds = _keep_rows(
        frame, text_column, None, path=p, skip_bad_rows=skip_bad_rows, max_chars=max_chars,
        pair=pair_column if pairs else None,
    )  # fmt: skip
    kept_texts = [t for t, k in zip(texts, keep, strict=True) if k]
    kept_pairs = None if seconds is None else [t for t, k in zip(seconds, keep, strict=True) if k]
    kept = frame[keep].reset_index(drop=True)
    kept.attrs = {"chars_cut": int(cut[keep].sum())}
    return kept_texts, kept_pairs, kept


def _pair_columns(
    frame: pd.DataFrame, text_column: str | None, pair_column: str | None
) -> tuple[str, str]:
    """The two text columns of a pair file to predict: given, or a known pair of names."""
    from trustune.data.columns import _known_pair

    known = _known_pair(frame)
    first = text_column or (known[0] if known else None)
    second = pair_column or (known[1] if known else None)
    for column, flag in ((first, "--text-column"), (second, "--text-pair-column")):
        if column is None:
            raise ColumnError(
                f"the run was trained on text pairs; cannot tell which columns hold the two "
                f"texts (the columns are {shown_names(frame.columns)}). Pass --text-column and "
                "--text-pair-column"
            )
        if column not in frame.columns:
            raise ColumnError(
                f"no column {shown(column)}; the columns are {shown_names(frame.columns)}. "
                f"Pass {flag} with one of them"
            )
    assert first is not None and second is not None
    return first, second


def _split(
    data: LabeledData, fraction: float, seed: int, *, stratified: bool
) -> tuple[LabeledData, LabeledData]:
    """Hold out ``fraction`` of the rows; ``stratified``: every class in both parts (classes of
    a label map built from the rows, so the split is the same whichever task encodes them)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(data))
    stratify: np.ndarray | None = None
    n_min = 1
    if stratified:
        labels = np.asarray(
            LabelMap.from_values(data.raw_labels).encode(data.raw_labels, source="split")
        )
        counts = np.bincount(labels)
        if counts[counts > 0].min() >= 2:
            stratify, n_min = labels, len(counts)
    n_val = max(round(len(data) * fraction), n_min)
    if n_val >= len(data):
        raise DataError(
            f"{data.info['path']} has too few rows ({len(data)}) to hold out a validation split; "
            "pass --validation FILE"
        )
    train_idx, val_idx = train_test_split(
        indices, test_size=n_val, random_state=seed, shuffle=True, stratify=stratify
    )
    train = data.subset(np.sort(train_idx), split_from=data.info["path"])
    val = data.subset(np.sort(val_idx), split_from_train=True)
    return train, val


def read_training_file(
    train_file: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    pair_column: str | None = None,
    skip_bad_rows: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[LabeledData, Columns]:
    """The training file, read whole (before any split), and the columns found in it."""
    return read_labeled(
        train_file, text_column=text_column, label_column=label_column, pair_column=pair_column,
        skip_bad_rows=skip_bad_rows, max_chars=max_chars,
    )  # fmt: skip


def with_validation(
    train: LabeledData,
    columns: Columns,
    *,
    stratified: bool,
    validation_file: str | Path | None = None,
    validation_fraction: float = 0.1,
    skip_bad_rows: bool = False,
    seed: int = 42,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> TrainingData:
    """Read the validation file with the training file's columns, or split one off the
    training rows (``stratified``: every class in both parts). Targets stay raw."""
    if validation_file is not None:
        validation, _ = read_labeled(
            validation_file, text_column=columns.text, label_column=columns.label,
            pair_column=columns.pair, pairs=columns.pair is not None,
            skip_bad_rows=skip_bad_rows, max_chars=max_chars,
        )  # fmt: skip
        validation.info["source"] = f"validation file {validation_file}"
    else:
        train, validation = _split(train, validation_fraction, seed, stratified=stratified)
        for part in (train, validation):
            part.info["text_chars"] = _text_stats(part.texts)
    return TrainingData(train=train, validation=validation, columns=columns)


def load_training_data(
    train_file: str | Path,
    *,
    validation_file: str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    pair_column: str | None = None,
    validation_fraction: float = 0.1,
    skip_bad_rows: bool = False,
    seed: int = 42,
    max_chars: int = DEFAULT_MAX_CHARS,
    stratified: bool = True,
) -> TrainingData:
    """Read the training data and its validation part (a file, or a split), targets raw."""
    train, columns = read_training_file(
        train_file, text_column=text_column, label_column=label_column, pair_column=pair_column,
        skip_bad_rows=skip_bad_rows, max_chars=max_chars,
    )  # fmt: skip
    return with_validation(
        train, columns, stratified=stratified, validation_file=validation_file,
        validation_fraction=validation_fraction, skip_bad_rows=skip_bad_rows, seed=seed,
        max_chars=max_chars,
    )  # fmt: skip
