"""A batch of tokenized texts as the attribution methods take it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trustune.explain.words import NO_WORD, TokenizedText, pad_token_batch

__all__ = ["TokenBatch"]


@dataclass(frozen=True)
class TokenBatch:
    """Padded inputs, the [PAD] baseline and the target class of each text.

    The baseline replaces every word piece by [PAD] and keeps the special tokens ([CLS],
    [SEP]), so attributions go to words only. ``word_mask`` numbers each text's words
    0..n-1 and gives special tokens and padding the id ``n_words`` (one inert feature whose
    baseline equals the input), as Captum's feature masks want.
    """

    texts: tuple[TokenizedText, ...]
    input_ids: torch.Tensor  # (batch, seq)
    attention_mask: torch.Tensor  # (batch, seq)
    baseline_ids: torch.Tensor  # (batch, seq)
    word_mask: torch.Tensor  # (batch, seq)
    targets: torch.Tensor  # (batch,)
    # the segment of each token (0 for single texts and padding); the baseline keeps them
    token_type_ids: torch.Tensor | None = None  # (batch, seq)

    @classmethod
    def build(
        cls, texts: Sequence[TokenizedText], targets: Sequence[int], *, pad_id: int
    ) -> TokenBatch:
        input_ids, attention_mask = pad_token_batch([t.input_ids for t in texts], pad_id=pad_id)
        words = torch.full_like(input_ids, NO_WORD)
        for row, text in enumerate(texts):
            words[row, : len(text.word_of_token)] = torch.as_tensor(text.word_of_token)
        is_word = words != NO_WORD
        baseline_ids = torch.where(is_word, torch.full_like(input_ids, pad_id), input_ids)
        inert = max(t.n_words for t in texts)
        word_mask = torch.where(is_word, words, torch.full_like(words, inert))
        token_type_ids = torch.zeros_like(input_ids)
        for row, text in enumerate(texts):
            if text.token_type_ids is not None:
                types = torch.as_tensor(text.token_type_ids, dtype=torch.long)
                token_type_ids[row, : len(types)] = types
        return cls(
            texts=tuple(texts),
            input_ids=input_ids,
            attention_mask=attention_mask,
            baseline_ids=baseline_ids,
            word_mask=word_mask,
            targets=torch.as_tensor(list(targets), dtype=torch.long),
            token_type_ids=token_type_ids,
        )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def types(self) -> torch.Tensor:
        """Token types (batch, seq): zeros when the batch was built without them."""
        if self.token_type_ids is None:
            return torch.zeros_like(self.input_ids)
        return self.token_type_ids
