"""Which texts the model read only in part: longer than the run's ``max_length`` in tokens.

Prediction keeps a long text's first ``max_length - 1`` tokens and the closing special token
(``trustune.encoding.encode_texts``). The API says so per prediction (``truncated``) and, for a
single text read by a fast tokenizer, where the cut is (``cut_at``: the model read
``text[:cut_at]``), so a client can show the part that was ignored. It runs on the model thread,
after the batch's forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustune.loaded import LoadedRun

__all__ = ["ReadPart", "Served", "read_parts", "served"]


@dataclass(frozen=True)
class ReadPart:
    """How much of one input the model read."""

    truncated: bool = False
    cut_at: int | None = None  # characters of the text the model read; None: all, or unknown


@dataclass(frozen=True)
class Served:
    """A library prediction with what the model read of its input (the API's prediction body)."""

    prediction: Any
    read: ReadPart

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = self.prediction.to_dict()
        return {**data, "truncated": self.read.truncated, "cut_at": self.read.cut_at}


def served(run: LoadedRun, inputs: list[Any], predictions: Sequence[Any]) -> list[Served]:
    """``predictions`` of ``inputs`` (texts or pairs), each with what the model read of it."""
    parts = read_parts(run, inputs)
    return [Served(p, r) for p, r in zip(predictions, parts, strict=True)]


def read_parts(run: LoadedRun, inputs: list[Any]) -> list[ReadPart]:
    """What the model reads of each input: texts, or (text, second text) tuples for a pair run."""
    if not inputs:
        return []
    tokenizer, max_length = run.tokenizer, run.max_length
    if run.pairs:  # cut longest-first across both texts: only whether, not where
        firsts, seconds = [t for t, _ in inputs], [p for _, p in inputs]
        firsts, seconds = _as_read(run, firsts), _as_read(run, seconds)
        ids = tokenizer(firsts, seconds, add_special_tokens=True, truncation=False, verbose=False)
        return [ReadPart(truncated=len(row) > max_length) for row in ids["input_ids"]]
    texts = _as_read(run, list(inputs))
    # Offsets into a redacted text do not point into the text the client sent.
    offsets = bool(getattr(tokenizer, "is_fast", False)) and not run.redact_pii
    encoded = tokenizer(
        texts, add_special_tokens=True, truncation=False, return_offsets_mapping=offsets,
        verbose=False,
    )  # fmt: skip
    out = []
    for row, ids in enumerate(encoded["input_ids"]):
        if len(ids) <= max_length:
            out.append(ReadPart())
            continue
        cut_at = None
        if offsets:  # the end of the last piece kept (special tokens have empty offsets)
            kept = encoded["offset_mapping"][row][: max_length - 1]
            cut_at = max((int(end) for start, end in kept if end > start), default=0)
        out.append(ReadPart(truncated=True, cut_at=cut_at))
    return out


def _as_read(run: LoadedRun, texts: list[str]) -> list[str]:
    """The texts as the model gets them (redacted when the run was trained with redaction)."""
    if not run.redact_pii:
        return texts
    from trustune.privacy.redact import redact_texts

    return redact_texts(texts).texts
