"""Words of a text and the sub-word pieces the model sees: tokenizing for explanation, merging back.

The fast tokenizer's ``word_ids`` say which word each piece belongs to (WordPiece ``##`` pieces
share their word's id) and its offsets give the word's characters in the original text, so a
word is shown exactly as the user wrote it. Special tokens ([CLS], [SEP], [PAD]) belong to no word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list; an empty or non-string text is an error naming its position."""
    out = list(texts)
    if not out:
        raise DataError("no text to explain; give at least one non-empty text")
    for i, text in enumerate(out):
        if not isinstance(text, str) or not text.strip():
            raise DataError(
                f"text {i + 1} of {len(out)} is empty or not a string; "
                "every text to explain needs content"
            )
    return out


def tokenize_words(
    tokenizer: object, texts: Sequence[str], *, max_length: int
) -> list[TokenizedText]:
    """Tokenize like prediction does (cut at ``max_length``, closing [SEP] kept) and map pieces to words."""
    texts = check_texts(texts)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            "explanations need a fast (Rust) tokenizer to map pieces back to words; "
            "save the model with its tokenizer.json"
        )
    encoded = tokenizer(  # type: ignore[operator]
        texts, add_special_tokens=True, truncation=False, return_offsets_mapping=True, verbose=False
    )
    out = []
    for row, text in enumerate(texts):
        ids = list(encoded["input_ids"][row])
        word_ids = [NO_WORD if w is None else int(w) for w in encoded.word_ids(row)]
        offsets = encoded["offset_mapping"][row]
        all_words = sorted({w for w in word_ids if w != NO_WORD})
        truncated = len(ids) > max_length
        if truncated:  # keep the closing special token after the cut, as prediction does
            ids = ids[: max_length - 1] + ids[-1:]
            word_ids = [*word_ids[: max_length - 1], NO_WORD]
        kept = sorted({w for w in word_ids if w != NO_WORD})
        # Renumber words 0..n-1 in text order (word ids may skip numbers).
        index = {w: i for i, w in enumerate(kept)}
        starts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for w, (start, end) in zip(word_ids, offsets, strict=False):
            if w == NO_WORD:
                continue
            starts[w] = min(starts.get(w, start), start)
            ends[w] = max(ends.get(w, end), end)
        spans = tuple((int(starts[w]), int(ends[w])) for w in kept)
        out.append(
            TokenizedText(
                text=text,
                input_ids=tuple(int(i) for i in ids),
                word_of_token=tuple(index[w] if w != NO_WORD else NO_WORD for w in word_ids),
                words=tuple(text[s:e] for s, e in spans),
                spans=spans,
                truncated=truncated,
                dropped_words=len(all_words) - len(kept),
            )
        )
    empty = [i for i, t in enumerate(out) if not t.words]
    if empty:
        raise DataError(
            f"text {empty[0] + 1} of {len(out)} has no word the tokenizer can read; "
            "every text to explain needs content"
        )
    return out


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
