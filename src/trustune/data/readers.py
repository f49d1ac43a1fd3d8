"""Readers for labeled-data files, registered by format name and file suffix.

The built-in readers stream: a file is read line by line, each line is bounded
(``MAX_LINE_BYTES``), and every cell longer than ``max_chars`` is cut as it is read, so one
huge line or text never takes more memory than its bound. Malformed input is a
:class:`DataFileError` naming the file and the line.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from trustune.config import DEFAULT_MAX_CHARS
from trustune.errors import DataFileError
from trustune.messages import shortened

__all__ = ["CUT_ROWS", "MAX_LINE_BYTES", "known_formats", "read_table", "register_reader"]

# (path, max_chars) -> frame; string cells longer than max_chars are cut, their row positions
# listed per column in frame.attrs[CUT_ROWS] (read_table cuts what a reader leaves).
Reader = Callable[[Path, int], pd.DataFrame]

CUT_ROWS = "trustune_cut_rows"
MAX_LINE_BYTES = 16 << 20  # one physical line (or one quoted CSV field) of a data file
_MAX_NUMBER_CHARS = 100  # a longer JSON integer is refused before int() sees it

_READERS: dict[str, Reader] = {}
_SUFFIXES: dict[str, str] = {}

# Column names that mark the first row of a delimited file as a header.
_HEADER_WORDS = {
    "text", "sentence", "label", "labels", "class", "category", "review", "content",
    "message", "body", "target", "intent", "sentiment", "document", "utterance", "y",
    # conversations and texts for causal LMs (trustune.data.conversations)
    "messages", "conversations", "prompt", "completion", "instruction", "input", "context",
    "output", "response",
}  # fmt: skip

csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))


def register_reader(name: str, *suffixes: str) -> Callable[[Reader], Reader]:
    """Register a reader ``(path, max_chars) -> DataFrame`` under a format name and suffixes."""

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


def read_table(path: str | Path, *, max_chars: int = DEFAULT_MAX_CHARS) -> pd.DataFrame:
    """Read a labeled-data file into a DataFrame of strings/ints, choosing the reader by suffix.

    Cells longer than ``max_chars`` are cut; ``frame.attrs[CUT_ROWS]`` lists their rows.
    """
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
        frame = _READERS[name](p, max_chars)
    except DataFileError:
        raise
    except UnicodeDecodeError as e:
        raise DataFileError(f"{p} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    except (ValueError, OSError, pd.errors.ParserError, ImportError, RecursionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataFileError(
            f"{p} cannot be read as {name}: {shortened(first, limit=200)}"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    return _cut_frame(frame, max_chars)


def _cut_frame(frame: pd.DataFrame, max_chars: int) -> pd.DataFrame:
    """Cut string cells longer than ``max_chars`` (left by a reader that read them whole)."""
    cut: dict[str, list[int]] = {k: list(v) for k, v in frame.attrs.get(CUT_ROWS, {}).items()}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue  # object, string and arrow columns may hold long texts
        long = [i for i, v in enumerate(values) if isinstance(v, str) and len(v) > max_chars]
        if long:
            frame[column] = [
                v[:max_chars] if isinstance(v, str) else v for v in values
            ]  # fmt: skip
            cut[column] = sorted({*cut.get(column, []), *long})
    frame.attrs[CUT_ROWS] = cut
    return frame


def _lines(path: Path) -> Iterator[str]:
    """The decoded lines of a UTF-8 file (a BOM is dropped), each at most MAX_LINE_BYTES long."""
    with open(path, "rb") as f:
        for number in itertools.count(1):
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                raise DataFileError(
                    f"{path} line {number} is longer than {MAX_LINE_BYTES >> 20} MiB; split the "
                    "file into one record per line"
                )
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataFileError(
                    f"{path} line {number} is not UTF-8 text (byte {e.start + 1} of the line): "
                    "save it as UTF-8"
                ) from None


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
    if len(text) > _MAX_NUMBER_CHARS:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unique_names(names: list[str]) -> list[str]:
    """Header names as pandas gives them: empty ones ``Unnamed: i``, repeats ``name.1``."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        name = name or f"Unnamed: {i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


class _Cutter:
    """Cuts cells longer than ``max_chars`` as rows are read and remembers which rows."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.rows: dict[str, list[int]] = {}

    def cell(self, value: Any, column: str, row: int) -> Any:
        if isinstance(value, str) and len(value) > self.max_chars:
            self.rows.setdefault(column, []).append(row)
            return value[: self.max_chars]
        return value


def _unquoted(cell: str) -> str:
    """A TSV field written with CSV quoting (``"a ""b"" c"``) as its text; anything else as is.

    Only a field that starts and ends with a quote and doubles every quote inside is taken for
    quoted (STS-B and other CSV-writer TSVs); GLUE-style TSVs keep stray quotes as text.
    """
    if len(cell) >= 2 and cell[0] == '"' and cell[-1] == '"':
        inner = cell[1:-1]
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return cell


def _read_delimited(
    path: Path, delimiter: str, quoting: Literal[0, 1, 2, 3], max_chars: int,
    *, unquote: bool = False,
) -> pd.DataFrame:  # fmt: skip
    lines = _lines(path)
    head: list[str] = []
    for line in lines:  # the first 50 non-blank lines decide whether there is a header
        head.append(line)
        if sum(1 for h in head if h.strip()) >= 50:
            break
    if not any(h.strip() for h in head):
        raise DataFileError(f"{path} is empty")
    has_header = _has_header(head, delimiter)
    reader = csv.reader(itertools.chain(head, lines), delimiter=delimiter, quoting=quoting)
    header: list[str] | None = None
    rows: list[list[str | None]] = []
    cutter = _Cutter(max_chars)
    width = 0
    try:
        for cells in reader:
            if not cells:
                continue
            if unquote:
                cells = [_unquoted(c) for c in cells]
            if has_header and header is None:
                header = _unique_names([shortened(c, limit=200) for c in cells])
                width = len(header)
                continue
            width = width or len(cells)
            if len(cells) > width:
                raise DataFileError(
                    f"{path} line {reader.line_num}: {len(cells)} fields, expected {width}; "
                    "quote texts that hold the delimiter"
                )
            names = header or [str(i) for i in range(width)]
            row: list[str | None] = [
                cutter.cell(c, names[i], len(rows)) if c != "" else None
                for i, c in enumerate(cells)
            ]
            rows.append(row + [None] * (width - len(row)))
    except csv.Error as e:
        raise DataFileError(f"{path} line {reader.line_num}: {shortened(str(e))}") from None
    if header is None:
        columns = ["text", "label"] if width == 2 else [f"column_{i}" for i in range(width)]
        cut = {columns[int(k)]: v for k, v in cutter.rows.items()}
    else:
        columns, cut = header, cutter.rows
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    frame.attrs[CUT_ROWS] = cut
    return frame


@register_reader("csv", ".csv")
def _read_csv(path: Path, max_chars: int) -> pd.DataFrame:
    return _read_delimited(path, ",", csv.QUOTE_MINIMAL, max_chars)


@register_reader("tsv", ".tsv", ".tab")
def _read_tsv(path: Path, max_chars: int) -> pd.DataFrame:
    # GLUE-style TSV keeps quote characters as text; a field quoted the CSV way is unquoted.
    return _read_delimited(path, "\t", csv.QUOTE_NONE, max_chars, unquote=True)


class _HugeNumber(ValueError):
    """A JSON integer with more digits than any label or id has."""


def _parse_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise _HugeNumber(f"an integer of {len(text)} digits is too large")
    return int(text)


@register_reader("jsonl", ".jsonl", ".ndjson")
def _read_jsonl(path: Path, max_chars: int) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    cutter = _Cutter(max_chars)
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line, parse_int=_parse_int)
            if not isinstance(record, dict):
                raise DataFileError(
                    f'{where}: expected a JSON object like {{"text": "...", "label": "..."}}, '
                    f"found a {type(record).__name__}"
                )
            # Nested values are kept as their JSON text: the table holds scalars only.
            records.append({
                str(k): cutter.cell(
                    json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v,
                    str(k), len(records),
                )
                for k, v in record.items()
            })  # fmt: skip
        except json.JSONDecodeError as e:
            raise DataFileError(f"{where} is not valid JSON: {e.msg} (column {e.colno})") from None
        except _HugeNumber as e:
            raise DataFileError(f"{where}: {e}") from None
        except RecursionError:
            raise DataFileError(f"{where}: JSON nested too deeply") from None
    if not records:
        raise DataFileError(f"{path} is empty")
    frame = pd.DataFrame.from_records(records)
    frame.attrs[CUT_ROWS] = cutter.rows
    return frame


@register_reader("parquet", ".parquet", ".pq")
def _read_parquet(path: Path, max_chars: int) -> pd.DataFrame:
    return pd.read_parquet(path)  # columnar: cut by read_table after reading
