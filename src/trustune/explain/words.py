"""Words of a text and the sub-word pieces the model sees: tokenizing for explanation, merging back.

The fast tokenizer's ``word_ids`` say which word each piece belongs to (WordPiece ``##`` pieces
share their word's id) and its offsets give the word's characters in the original text, so a
word is shown exactly as the user wrote it. Special tokens ([CLS], [SEP], [PAD]) belong to no word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trustune.errors import DataError, ModelError

__all__ = ["TokenizedText", "merge_pieces", "pad_token_batch", "tokenize_words"]

NO_WORD = -1


@dataclass(frozen=True)
class TokenizedText:
    """One text as model input, with the word each token belongs to.

    ``word_of_token[i]`` is the word index of token ``i``, or ``-1`` for special tokens.
    ``spans`` are (start, end) character offsets of each word in ``text``.
    """

    text: str
    input_ids: tuple[int, ...]
    word_of_token: tuple[int, ...]
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    truncated: bool
    dropped_words: int
    # text pairs: the second text, the segment of each word (0: ``text``, 1: ``text_pair``; its
    # span is in that text) and of each token, as the tokenizer's pair input assigns them
    text_pair: str | None = None
    segments: tuple[int, ...] = ()
    token_type_ids: tuple[int, ...] | None = None

    @property
    def n_words(self) -> int:
        return len(self.words)

    def without_words(self, removed: set[int]) -> list[int]:
        """Token ids with the pieces of the given words deleted (special tokens kept)."""
        return [
            tok
            for tok, word in zip(self.input_ids, self.word_of_token, strict=True)
            if word == NO_WORD or word not in removed
        ]

    def types_without_words(self, removed: set[int]) -> list[int] | None:
        """The token types matching :meth:`without_words` (None for a single text)."""
        if self.token_type_ids is None:
            return None
        return [
            kind
            for kind, word in zip(self.token_type_ids, self.word_of_token, strict=True)
            if word == NO_WORD or word not in removed
        ]


def check_texts(texts: Sequence[str], what: str = "text") -> list[str]:
    """The texts as a list; an empty or non-string text is an error naming its position."""
    out = list(texts)
    if not out:
        raise DataError(f"no {what} to explain; give at least one non-empty {what}")
    for i, text in enumerate(out):
        if not isinstance(text, str) or not text.strip():
            raise DataError(
                f"{what} {i + 1} of {len(out)} is empty or not a string; "
                f"every {what} to explain needs content"
            )
    return out


# A token's word: (segment, word id in its own text), None for special tokens.
_WordKey = tuple[int, int] | None


def tokenize_words(
    tokenizer: object,
    texts: Sequence[str],
    *,
    max_length: int,
    pairs: Sequence[str] | None = None,
) -> list[TokenizedText]:
    """Tokenize like prediction does and map pieces to words.

    A single text is cut at ``max_length`` with its closing [SEP] kept; with ``pairs`` each
    input is the tokenizer's pair input, cut longest-first, as
    :func:`trustune.encoding.encode_texts` does, and the words of both texts are numbered in
    order (first text, then second) with their segment recorded.
    """
    texts = check_texts(texts)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            "explanations need a fast (Rust) tokenizer to map pieces back to words; "
            "save the model with its tokenizer.json"
        )
    if pairs is not None:
        out = _tokenize_pairs(tokenizer, texts, check_texts(pairs, "second text"), max_length)
    else:
        out = _tokenize_singles(tokenizer, texts, max_length)
    empty = [i for i, t in enumerate(out) if not t.words]
    if empty:
        raise DataError(
            f"text {empty[0] + 1} of {len(out)} has no word the tokenizer can read; "
            "every text to explain needs content"
        )
    return out


def _tokenize_singles(tokenizer: Any, texts: list[str], max_length: int) -> list[TokenizedText]:
    encoded = tokenizer(
        texts, add_special_tokens=True, truncation=False, return_offsets_mapping=True, verbose=False
    )
    out = []
    for row, text in enumerate(texts):
        ids = list(encoded["input_ids"][row])
        keys: list[_WordKey] = [None if w is None else (0, int(w)) for w in encoded.word_ids(row)]
        seen = len({k for k in keys if k is not None})
        truncated = len(ids) > max_length
        if truncated:  # keep the closing special token after the cut, as prediction does
            ids = ids[: max_length - 1] + ids[-1:]
            keys = [*keys[: max_length - 1], None]
        out.append(
            _assemble(
                (text,), ids, keys, encoded["offset_mapping"][row], truncated=truncated,
                seen_words=seen, token_types=None,
            )
        )  # fmt: skip
    return out


def _tokenize_pairs(
    tokenizer: Any, texts: list[str], pairs: list[str], max_length: int
) -> list[TokenizedText]:
    if len(pairs) != len(texts):
        raise DataError(f"{len(texts)} texts but {len(pairs)} second texts; give one of each")
    options = {
        "add_special_tokens": True, "return_offsets_mapping": True,
        "return_token_type_ids": True, "verbose": False,
    }  # fmt: skip
    whole = tokenizer(texts, pairs, truncation=False, **options)
    long = [i for i in range(len(texts)) if len(whole["input_ids"][i]) > max_length]
    cut: Any = None
    if long:  # longest-first, as prediction cuts pairs
        cut = tokenizer(
            [texts[i] for i in long], [pairs[i] for i in long], truncation="longest_first",
            max_length=max_length, **options,
        )  # fmt: skip
    where = {i: j for j, i in enumerate(long)}
    out = []
    for row, (text, pair) in enumerate(zip(texts, pairs, strict=True)):
        seen = len({k for k in _pair_keys(whole, row) if k is not None})
        encoding, r = (cut, where[row]) if row in where else (whole, row)
        out.append(
            _assemble(
                (text, pair), list(encoding["input_ids"][r]), _pair_keys(encoding, r),
                encoding["offset_mapping"][r], truncated=row in where, seen_words=seen,
                token_types=[int(t) for t in encoding["token_type_ids"][r]],
            )
        )  # fmt: skip
    return out


def _pair_keys(encoding: Any, row: int) -> list[_WordKey]:
    """Each token's (segment, word) in a pair encoding (word ids restart in each text)."""
    return [
        None if w is None or s is None else (int(s), int(w))
        for w, s in zip(encoding.word_ids(row), encoding.sequence_ids(row), strict=True)
    ]


def _assemble(
    sources: tuple[str, ...],
    ids: Sequence[int],
    keys: Sequence[_WordKey],
    offsets: Sequence[tuple[int, int]],
    *,
    truncated: bool,
    seen_words: int,
    token_types: Sequence[int] | None,
) -> TokenizedText:
    """One input's words from its tokens: renumbered 0..n-1 in order (word ids may skip)."""
    kept = sorted({k for k in keys if k is not None})
    index = {k: i for i, k in enumerate(kept)}
    starts: dict[tuple[int, int], int] = {}
    ends: dict[tuple[int, int], int] = {}
    for key, (start, end) in zip(keys, offsets, strict=False):
        if key is None:
            continue
        starts[key] = min(starts.get(key, start), start)
        ends[key] = max(ends.get(key, end), end)
    spans = tuple((int(starts[k]), int(ends[k])) for k in kept)
    return TokenizedText(
        text=sources[0],
        input_ids=tuple(int(i) for i in ids),
        word_of_token=tuple(NO_WORD if k is None else index[k] for k in keys),
        words=tuple(sources[k[0]][s:e] for k, (s, e) in zip(kept, spans, strict=True)),
        spans=spans,
        truncated=truncated,
        dropped_words=seen_words - len(kept),
        text_pair=sources[1] if len(sources) > 1 else None,
        segments=tuple(k[0] for k in kept),
        token_type_ids=None if token_types is None else tuple(token_types),
    )


def merge_pieces(
    token_scores: np.ndarray, word_of_token: Sequence[int], n_words: int
) -> np.ndarray:
    """Word scores as the sum of their pieces' scores (a sum keeps IG's completeness).

    ``token_scores`` covers at least the text's tokens (padding after them is ignored);
    special tokens are left out.
    """
    words = np.zeros(n_words, dtype=np.float64)
    index = np.asarray(word_of_token)
    scores = np.asarray(token_scores[: len(index)], dtype=np.float64)
    mask = index != NO_WORD
    np.add.at(words, index[mask], scores[mask])
    return words


def pad_token_batch(
    sequences: Sequence[Sequence[int]], *, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded to the longest sequence of the batch: (batch, seq)."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask
