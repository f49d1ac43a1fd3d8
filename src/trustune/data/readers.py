"""Readers for labeled-data files, registered by format name and file suffix."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from trustune.errors import DataFileError

__all__ = ["known_formats", "read_table", "register_reader"]

Reader = Callable[[Path], pd.DataFrame]

_READERS: dict[str, Reader] = {}
_SUFFIXES: dict[str, str] = {}

# Column names that mark the first row of a delimited file as a header.
_HEADER_WORDS = {
    "text", "sentence", "label", "labels", "class", "category", "review", "content",
    "message", "body", "target", "intent", "sentiment", "document", "utterance", "y",
}  # fmt: skip


def register_reader(name: str, *suffixes: str) -> Callable[[Reader], Reader]:
    """Register a reader under a format name for the given file suffixes."""

    def decorator(fn: Reader) -> Reader:
        if name in _READERS:
            raise ValueError(f"a reader named {name!r} is already registered: {known_formats()}")
        _READERS[name] = fn
        for suffix in suffixes:
            _SUFFIXES[suffix] = name
        return fn

    return decorator


def known_formats() -> list[str]:
    """Format names with their suffixes, for messages."""
    return [
        f"{name} ({', '.join(s for s, n in _SUFFIXES.items() if n == name)})" for name in _READERS
    ]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a labeled-data file into a DataFrame of strings/ints, choosing the reader by suffix."""
    p = Path(path)
    if not p.exists():
        raise DataFileError(f"data file {p} does not exist")
    if not p.is_file():
        raise DataFileError(f"data file {p} is not a file")
    suffixes = [s.lower() for s in p.suffixes]
    name = next((_SUFFIXES[s] for s in reversed(suffixes) if s in _SUFFIXES), None)
    if name is None:
        raise DataFileError(
            f"{p}: unknown data format {p.suffix or '(no suffix)'!r}. "
            f"Use one of: {'; '.join(known_formats())}"
        )
    try:
        frame = _READERS[name](p)
    except DataFileError:
        raise
    except UnicodeDecodeError as e:
        raise DataFileError(f"{p} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataFileError(f"{p} cannot be read as {name}: {first}") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _has_header(lines: list[str], delimiter: str) -> bool:
    """A known column name in the first row, or a column numeric below a non-numeric first cell."""
    rows = [line.rstrip("\r\n").split(delimiter) for line in lines if line.strip()]
    first = [c.strip().strip('"').lower() for c in rows[0]]
    if any(c in _HEADER_WORDS for c in first):
        return True
    body = [r for r in rows[1:] if len(r) == len(rows[0])]
    for col, cell in enumerate(first):
        values = [r[col].strip() for r in body]
        if values and all(_is_number(v) for v in values) and not _is_number(cell):
            return True
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_delimited(path: Path, delimiter: str, quoting: int) -> pd.DataFrame:
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise DataFileError(f"{path} is empty")
    header = 0 if _has_header(text.splitlines()[:50], delimiter) else None
    options: dict[str, Any] = {
        "sep": delimiter,
        "header": header,
        "quoting": quoting,
        "dtype": str,
        "keep_default_na": False,
        "na_values": [""],
        "skip_blank_lines": True,
    }
    frame: pd.DataFrame = pd.read_csv(io.StringIO(text), **options)
    if header is None:
        n = frame.shape[1]
        frame.columns = ["text", "label"] if n == 2 else [f"column_{i}" for i in range(n)]
    return frame


@register_reader("csv", ".csv")
def _read_csv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, ",", csv.QUOTE_MINIMAL)


@register_reader("tsv", ".tsv", ".tab")
def _read_tsv(path: Path) -> pd.DataFrame:
    # GLUE-style TSV keeps quote characters as text.
    return _read_delimited(path, "\t", csv.QUOTE_NONE)


@register_reader("jsonl", ".jsonl", ".ndjson")
def _read_jsonl(path: Path) -> pd.DataFrame:
    frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
    if frame.empty:
        raise DataFileError(f"{path} is empty")
    return frame


@register_reader("parquet", ".parquet", ".pq")
def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
