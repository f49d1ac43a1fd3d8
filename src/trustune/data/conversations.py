"""Conversations and texts for causal language models: reading, detecting the format, checking.

Five formats, detected by their columns when exactly one fits (:class:`ChatFormat`):

- ``chat``: a ``messages`` column, each a list of ``{"role", "content"}`` (the OpenAI format;
  roles ``system``, ``user``, ``assistant``; ``developer`` is read as ``system``; a content given
  as a list of ``{"type": "text", "text"}`` parts is joined);
- ``sharegpt``: a ``conversations`` column of ``{"from", "value"}`` (``human`` -> user,
  ``gpt`` -> assistant, ``system``);
- ``prompt-completion``: ``prompt`` and ``completion`` columns (loss on the completion);
- ``instruction``: ``instruction`` and ``output`` or ``response``, with an optional ``input``
  or ``context`` (Alpaca, Dolly), read as a user turn and the assistant's answer;
- ``text``: a ``text`` column, or a ``.txt`` file whose blank-line-separated blocks are the
  texts (continued pre-training; loss on every token).

Files are read by the readers registry (JSONL, CSV, TSV, parquet; ``.txt`` is registered here);
nested values arrive as JSON text or, from parquet, as arrays. Rows that cannot be used (no
assistant reply, an unknown role, an empty message, a malformed conversation) are one
:class:`~trustune.errors.DataError` naming them, or are skipped with ``skip_bad_rows``. Rendering
with the chat template and the labels are :mod:`trustune.data.chat_encoding`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from trustune.artifact import file_sha256
from trustune.config import DEFAULT_MAX_CHARS
from trustune.data.readers import CUT_ROWS, read_table, register_reader
from trustune.errors import ColumnError, ConfigError, DataError, DataFileError
from trustune.messages import shown, shown_names

__all__ = [
    "ROLES",
    "ChatData",
    "ChatExample",
    "ChatFormat",
    "Completion",
    "Conversation",
    "Role",
    "detect_chat_format",
    "matching_formats",
    "read_conversations",
]

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
_CHAT_ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user",
                                "assistant": "assistant"}  # fmt: skip
_SHAREGPT_ROLES: dict[str, Role] = {"system": "system", "human": "user", "user": "user",
                                    "gpt": "assistant", "assistant": "assistant",
                                    "chatgpt": "assistant"}  # fmt: skip


class ChatFormat(StrEnum):
    """How a file holds its examples."""

    CHAT = "chat"
    SHAREGPT = "sharegpt"
    PROMPT_COMPLETION = "prompt-completion"
    INSTRUCTION = "instruction"
    TEXT = "text"

    @classmethod
    def list(cls) -> list[str]:
        return [f.value for f in cls]

    @classmethod
    def parse(cls, value: ChatFormat | str) -> ChatFormat:
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(
                f"unknown data format {shown(value)}; choose between {cls.list()}"
            ) from None


# The columns of each format: name in the result -> accepted column names (lowercase), in order.
_REQUIRED: dict[ChatFormat, dict[str, tuple[str, ...]]] = {
    ChatFormat.CHAT: {"messages": ("messages",)},
    ChatFormat.SHAREGPT: {"conversations": ("conversations",)},
    ChatFormat.PROMPT_COMPLETION: {"prompt": ("prompt",), "completion": ("completion",)},
    ChatFormat.INSTRUCTION: {"instruction": ("instruction",), "output": ("output", "response")},
    ChatFormat.TEXT: {"text": ("text",)},
}
_OPTIONAL: dict[ChatFormat, dict[str, tuple[str, ...]]] = {
    ChatFormat.INSTRUCTION: {"input": ("input", "context")},
}
_EXPECTED = (
    "a messages column (chat), conversations (ShareGPT), prompt and completion, instruction "
    "and output or response (input or context optional), or text"
)


@dataclass(frozen=True)
class Conversation:
    """A conversation: ``(role, content)`` messages in order."""

    messages: tuple[tuple[Role, str], ...]

    def as_dicts(self) -> list[dict[str, str]]:
        """The messages as ``apply_chat_template`` takes them."""
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class Completion:
    """A prompt and the completion the model learns to write after it."""

    prompt: str
    completion: str

    def as_conversation(self) -> Conversation:
        """The same example as one user turn and the assistant's answer."""
        return Conversation((("user", self.prompt), ("assistant", self.completion)))


ChatExample = Conversation | Completion | str  # str: a plain text


@dataclass
class ChatData:
    """The examples of one file, the data row (from 1) each came from, and its manifest facts."""

    format: ChatFormat
    examples: list[ChatExample]
    rows: list[int]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    def subset(self, indices: Sequence[int] | np.ndarray, **info: Any) -> ChatData:
        """The examples at ``indices`` (a split), with ``info`` updated."""
        picked = [int(i) for i in indices]
        return ChatData(
            format=self.format,
            examples=[self.examples[i] for i in picked],
            rows=[self.rows[i] for i in picked],
            info={**self.info, "rows": len(picked), **info},
        )


def _find(frame: pd.DataFrame, names: dict[str, tuple[str, ...]]) -> dict[str, str] | None:
    lowered = {str(c).lower(): str(c) for c in frame.columns}
    found: dict[str, str] = {}
    for key, candidates in names.items():
        column = next((lowered[c] for c in candidates if c in lowered), None)
        if column is None:
            return None
        found[key] = column
    return found


def matching_formats(frame: pd.DataFrame) -> dict[ChatFormat, dict[str, str]]:
    """Every format whose columns the table has, with the columns it would read."""
    matches: dict[ChatFormat, dict[str, str]] = {}
    for fmt, required in _REQUIRED.items():
        columns = _find(frame, required)
        if columns is not None:
            for key, candidates in _OPTIONAL.get(fmt, {}).items():
                optional = _find(frame, {key: candidates})
                if optional:
                    columns.update(optional)
            matches[fmt] = columns
    return matches


def detect_chat_format(
    frame: pd.DataFrame, *, path: str | Path, format: ChatFormat | str | None = None
) -> tuple[ChatFormat, dict[str, str]]:
    """The format of a table and the columns it reads: the one given, or the only one that fits."""
    matches = matching_formats(frame)
    if format is not None:
        wanted = ChatFormat.parse(format)
        if wanted not in matches:
            need = " and ".join("/".join(c) for c in _REQUIRED[wanted].values())
            raise ColumnError(
                f"{path} has no {need} column for the {wanted.value} format; the columns are "
                f"{shown_names(frame.columns)}"
            )
        return wanted, matches[wanted]
    if not matches:
        raise ColumnError(
            f"{path} holds no conversations or texts that trustune recognises; the columns are "
            f"{shown_names(frame.columns)}. Expected {_EXPECTED}"
        )
    if len(matches) > 1:
        fits = "; ".join(
            f"{fmt.value} (columns {', '.join(cols.values())})" for fmt, cols in matches.items()
        )
        raise ColumnError(
            f"{path} fits more than one format: {fits}. Choose one with format "
            f"{' or '.join(f.value for f in matches)}, or drop the other columns"
        )
    (fmt, columns), *_ = matches.items()
    return fmt, columns


# -- reading rows ----------------------------------------------------------------------------

# Problems in the order they are reported: (key, what the rows have).
_PROBLEMS = (
    ("too-long", "a conversation longer than max_chars characters as read (cut, so no longer "
                 "valid JSON): raise --max-chars or shorten it"),
    ("malformed", "no valid list of messages (each an object with role and content text)"),
    ("role", "an unknown role"),
    ("empty", "an empty message or text"),
    ("no-reply", "no assistant reply (an assistant message after a user or system message)"),
)  # fmt: skip


class _Problems:
    """Rows that cannot be used, by problem, and the unknown role names seen."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}
        self.roles: set[str] = set()

    def add(self, problem: str, row: int) -> None:
        self.rows.setdefault(problem, []).append(row)

    @property
    def bad(self) -> set[int]:
        return {r for rows in self.rows.values() for r in rows}

    def raise_first(self, path: str | Path, fmt: ChatFormat) -> None:
        for key, what in _PROBLEMS:
            rows = self.rows.get(key)
            if not rows:
                continue
            if key == "role":
                allowed = sorted(_SHAREGPT_ROLES if fmt is ChatFormat.SHAREGPT else _CHAT_ROLES)
                seen = ", ".join(shown(r) for r in sorted(self.roles)[:5])
                what = f"an unknown role ({seen}; allowed: {', '.join(allowed)})"
            listed = ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "")
            raise DataError(
                f"{path}: {len(rows)} row(s) have {what} (data rows {listed}, counting from 1). "
                "Fix them or pass --skip-bad-rows"
            )


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _structure(value: Any) -> Any:
    """A nested cell as Python data: JSON text parsed, parquet arrays as lists."""
    if isinstance(value, str):
        return json.loads(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _content(value: Any) -> str | None:
    """A message's text: a string, or a list of text parts joined; None if it is neither."""
    if isinstance(value, str):
        return value
    value = _structure(value) if isinstance(value, np.ndarray) else value
    if isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in value
    ):
        return "".join(p["text"] for p in value)
    return None


def _messages(
    value: Any, row: int, problems: _Problems, *, role_key: str, content_key: str,
    roles: dict[str, Role],
) -> Conversation | None:  # fmt: skip
    try:
        items = _structure(value)
    except (json.JSONDecodeError, RecursionError):
        items = None
    if not isinstance(items, list) or not items:
        problems.add("malformed", row)
        return None
    messages: list[tuple[Role, str]] = []
    for item in items:
        item = _structure(item) if isinstance(item, np.ndarray) else item
        if not isinstance(item, dict) or not isinstance(item.get(role_key), str):
            problems.add("malformed", row)
            return None
        content = _content(item.get(content_key))
        if content is None:
            problems.add("malformed", row)
            return None
        role = roles.get(item[role_key].strip().lower())
        if role is None:
            problems.roles.add(item[role_key])
            problems.add("role", row)
            return None
        if not content.strip():
            problems.add("empty", row)
            return None
        messages.append((role, content))
    if not any(role == "assistant" for role, _ in messages[1:]):
        problems.add("no-reply", row)
        return None
    return Conversation(tuple(messages))


_Parser = Callable[[pd.DataFrame, dict[str, str], _Problems], list[ChatExample | None]]


def _parse_chat(frame: pd.DataFrame, cols: dict[str, str], problems: _Problems) -> list[Any]:
    return _parse_nested(frame, cols["messages"], problems, "role", "content", _CHAT_ROLES)


def _parse_sharegpt(frame: pd.DataFrame, cols: dict[str, str], problems: _Problems) -> list[Any]:
    return _parse_nested(frame, cols["conversations"], problems, "from", "value", _SHAREGPT_ROLES)


def _parse_nested(
    frame: pd.DataFrame, column: str, problems: _Problems, role_key: str, content_key: str,
    roles: dict[str, Role],
) -> list[Any]:  # fmt: skip
    cut = set(frame.attrs.get(CUT_ROWS, {}).get(column, []))
    out: list[Any] = []
    for i, value in enumerate(frame[column]):
        if i in cut:
            problems.add("too-long", i + 1)
            out.append(None)
            continue
        out.append(
            _messages(
                value, i + 1, problems, role_key=role_key, content_key=content_key, roles=roles
            )
        )
    return out


def _parse_completion(frame: pd.DataFrame, cols: dict[str, str], problems: _Problems) -> list[Any]:
    out: list[Any] = []
    for i, (prompt, completion) in enumerate(
        zip(frame[cols["prompt"]], frame[cols["completion"]], strict=True)
    ):
        prompt, completion = _text(prompt), _text(completion)
        if not prompt.strip() or not completion.strip():
            problems.add("empty", i + 1)
            out.append(None)
        else:
            out.append(Completion(prompt, completion))
    return out


def _parse_instruction(frame: pd.DataFrame, cols: dict[str, str], problems: _Problems) -> list[Any]:
    inputs = frame[cols["input"]] if "input" in cols else [None] * len(frame)
    out: list[Any] = []
    for i, (instruction, extra, output) in enumerate(
        zip(frame[cols["instruction"]], inputs, frame[cols["output"]], strict=True)
    ):
        instruction, extra, output = _text(instruction), _text(extra), _text(output)
        if not instruction.strip() or not output.strip():
            problems.add("empty", i + 1)
            out.append(None)
            continue
        # Alpaca's own prompt puts the input after the instruction, as a separate paragraph.
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        out.append(Conversation((("user", prompt), ("assistant", output))))
    return out


def _parse_text(frame: pd.DataFrame, cols: dict[str, str], problems: _Problems) -> list[Any]:
    out: list[Any] = []
    for i, value in enumerate(frame[cols["text"]]):
        text = _text(value)
        if not text.strip():
            problems.add("empty", i + 1)
            out.append(None)
        else:
            out.append(text)
    return out


_PARSERS: dict[ChatFormat, _Parser] = {
    ChatFormat.CHAT: _parse_chat,
    ChatFormat.SHAREGPT: _parse_sharegpt,
    ChatFormat.PROMPT_COMPLETION: _parse_completion,
    ChatFormat.INSTRUCTION: _parse_instruction,
    ChatFormat.TEXT: _parse_text,
}


def read_conversations(
    path: str | Path,
    *,
    format: ChatFormat | str | None = None,
    skip_bad_rows: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> ChatData:
    """Read a file of conversations or texts: its format (given, or detected when only one
    fits), its examples in file order, and what the manifest records about it.

    Unusable rows are a :class:`DataError` naming them, or skipped with ``skip_bad_rows``
    (counted in ``info["skipped_rows"]``). Texts longer than ``max_chars`` are cut as read
    (``info["chars_cut"]``); a nested conversation that long is refused, since cutting it
    breaks its JSON.
    """
    p = Path(path)
    frame = read_table(p, max_chars=max_chars)
    fmt, columns = detect_chat_format(frame, path=p, format=format)
    problems = _Problems()
    parsed = _PARSERS[fmt](frame, columns, problems)
    if problems.rows and not skip_bad_rows:
        problems.raise_first(p, fmt)
    rows = [i + 1 for i, example in enumerate(parsed) if example is not None]
    examples = [example for example in parsed if example is not None]
    if not examples:
        raise DataError(f"{p} has no usable rows")
    cut = {int(r) for c in columns.values() for r in frame.attrs.get(CUT_ROWS, {}).get(c, [])}
    info = {
        "path": str(p),
        "sha256": file_sha256(p),
        "format": fmt.value,
        "columns": columns,
        "rows": len(examples),
        "skipped_rows": len(parsed) - len(examples),
        "chars_cut": len({r + 1 for r in cut} & set(rows)),
    }
    if fmt in (ChatFormat.CHAT, ChatFormat.SHAREGPT):
        turns = [sum(role == "assistant" for role, _ in e.messages) for e in examples
                 if isinstance(e, Conversation)]  # fmt: skip
        info["assistant_turns"] = int(sum(turns))
    return ChatData(format=fmt, examples=examples, rows=rows, info=info)


@register_reader("txt", ".txt")
def _read_txt(path: Path, max_chars: int) -> pd.DataFrame:
    """A plain-text file: each block of lines separated by blank lines is one text."""
    texts: list[str] = []
    block: list[str] = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            if line.strip():
                block.append(line)
            elif block:
                texts.append("".join(block).rstrip("\r\n"))
                block = []
    if block:
        texts.append("".join(block).rstrip("\r\n"))
    if not texts:
        raise DataFileError(f"{path} is empty")
    return pd.DataFrame({"text": texts}, dtype=object)  # cut by read_table after reading
