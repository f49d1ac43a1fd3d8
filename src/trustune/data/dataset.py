"""Loading labeled data: read, pick columns, check rows, encode labels, split, fingerprint.

Texts longer than ``max_chars`` (``data.max_chars``, default 100,000) are cut when read; how
many were cut is ``info["chars_cut"]`` (the manifest records it beside ``truncated``) and,
for texts to predict, ``frame.attrs["chars_cut"]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    "load_texts",
    "load_training_data",
    "read_labeled",
]


@dataclass
class LabeledData:
    """Texts with raw labels, plus what the manifest records about where they came from."""

    texts: list[str]
    raw_labels: list[Any]
    info: dict[str, Any] = field(default_factory=dict)
    labels: list[int] = field(default_factory=list)
    cut: list[bool] = field(default_factory=list)  # per text: longer than max_chars, cut

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
        )


@dataclass
class TrainingData:
    """Everything fine-tuning needs from the data side."""

    train: LabeledData
    validation: LabeledData
    label_map: LabelMap
    columns: Columns


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def _keep_rows(
    frame: pd.DataFrame, text: str, label: str | None, *, path: Path, skip_bad_rows: bool,
    max_chars: int,
) -> tuple[np.ndarray, list[str], np.ndarray]:  # fmt: skip
    """Mask of usable rows, all texts as strings (cut to ``max_chars``), mask of cut texts."""
    texts = [
        "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in frame[text]
    ]
    cut = np.zeros(len(texts), dtype=bool)
    cut[list(frame.attrs.get(CUT_ROWS, {}).get(text, []))] = True
    for i, t in enumerate(texts):  # a non-string text (a number) is cut after str()
        if len(t) > max_chars:
            texts[i], cut[i] = t[:max_chars], True
    bad = np.fromiter((not t.strip() for t in texts), dtype=bool, count=len(texts))
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
    return ~bad, texts, cut


def read_labeled(
    path: str | Path,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    skip_bad_rows: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[LabeledData, Columns]:
    """Read one labeled file; empty texts/labels are an error naming the rows (or skipped)."""
    p = Path(path)
    frame = read_table(p, max_chars=max_chars)
    columns = detect_columns(frame, text_column=text_column, label_column=label_column)
    keep, all_texts, all_cut = _keep_rows(
        frame, columns.text, columns.label, path=p, skip_bad_rows=skip_bad_rows,
        max_chars=max_chars,
    )  # fmt: skip
    texts = [t for t, k in zip(all_texts, keep, strict=True) if k]
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
    return LabeledData(texts=texts, raw_labels=labels, info=info, cut=cut), columns


def load_texts(
    path: str | Path, *, text_column: str | None = None, skip_bad_rows: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> tuple[list[str], pd.DataFrame]:  # fmt: skip
    """Read texts to predict, with the file's other columns kept alongside (rows aligned).

    ``frame.attrs["chars_cut"]`` counts the kept texts that were cut to ``max_chars``.
    """
    p = Path(path)
    frame = read_table(p, max_chars=max_chars)
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
    keep, texts, cut = _keep_rows(
        frame, text_column, None, path=p, skip_bad_rows=skip_bad_rows, max_chars=max_chars
    )
    kept_texts = [t for t, k in zip(texts, keep, strict=True) if k]
    kept = frame[keep].reset_index(drop=True)
    kept.attrs = {"chars_cut": int(cut[keep].sum())}
    return kept_texts, kept


def _split(data: LabeledData, fraction: float, seed: int) -> tuple[LabeledData, LabeledData]:
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(data))
    labels = np.asarray(data.labels)
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    n_val = max(round(len(data) * fraction), len(counts) if stratify is not None else 1)
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


# A label column is taken for text when most of its values are distinct and they are long: on
# average fewer than two examples per class, and values as long as a sentence.
_TEXT_LIKE_DISTINCT_SHARE = 0.5
_TEXT_LIKE_MIN_CLASSES = 20
_TEXT_LIKE_MEAN_CHARS = 20


def _refuse_text_as_labels(data: LabeledData, columns: Columns, path: str | Path) -> None:
    """A :class:`DataError` when the label column holds free text (swapped columns, a wrong pick)."""
    values = [str(v) for v in data.raw_labels]
    distinct = len(set(values))
    mean_chars = sum(len(v) for v in values) / len(values)
    if (
        distinct >= _TEXT_LIKE_MIN_CLASSES
        and distinct > _TEXT_LIKE_DISTINCT_SHARE * len(values)
        and mean_chars >= _TEXT_LIKE_MEAN_CHARS
    ):
        raise DataError(
            f"the label column {shown(columns.label)} of {path} looks like text, not labels: "
            f"{distinct} of {len(values)} values are distinct, {mean_chars:.0f} characters on "
            f"average; if the columns are swapped pass --text-column {shown(columns.label)} "
            f"--label-column {shown(columns.text)}"
        )


def load_training_data(
    train_file: str | Path,
    *,
    validation_file: str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    validation_fraction: float = 0.1,
    skip_bad_rows: bool = False,
    seed: int = 42,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> TrainingData:
    """Load train (and validation) data, build the label map, split when no validation is given."""
    train, columns = read_labeled(
        train_file, text_column=text_column, label_column=label_column,
        skip_bad_rows=skip_bad_rows, max_chars=max_chars,
    )  # fmt: skip
    _refuse_text_as_labels(train, columns, train_file)
    label_map = LabelMap.from_values(train.raw_labels)
    train.encode(label_map, source=str(train_file))
    if validation_file is not None:
        validation, _ = read_labeled(
            validation_file,
            text_column=text_column or columns.text,
            label_column=label_column or columns.label,
            skip_bad_rows=skip_bad_rows,
            max_chars=max_chars,
        )
        validation.encode(label_map, source=f"validation file {validation_file}")
    else:
        train, validation = _split(train, validation_fraction, seed)
        for part in (train, validation):
            part.encode(label_map, source=str(train_file))
            part.info["text_chars"] = _text_stats(part.texts)
    return TrainingData(train=train, validation=validation, label_map=label_map, columns=columns)
