"""Tokenized examples and padded batches: single texts or text pairs (the modality layer).

Below training, privacy, explanations and inference, which all encode and pad through it, so
none of them imports another's internals. Padding happens per batch (dynamic padding);
position and token-type ids are explicit in every batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["IGNORE_INDEX", "Encoded", "collate", "encode_texts", "padded_batches"]


@dataclass
class Encoded:
    """Token ids of texts or text pairs (unpadded), and how many were cut at ``max_length``.

    ``token_type_ids`` is None for single texts (all zeros) and holds the segment of every
    token for pairs (0 for the first text, 1 for the second, as the tokenizer assigns them).
    ``segments`` False: the model takes no token-type ids at all (a causal language model),
    and batches leave them out.
    """

    input_ids: list[list[int]]
    truncated: int
    token_type_ids: list[list[int]] | None = None
    segments: bool = True

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def batch(
        self, indices: Sequence[int], *, pad_id: int, labels: Sequence[Any] | None = None
    ) -> dict[str, torch.Tensor]:
        """The examples at ``indices``, padded to the longest of them."""
        types = self.token_type_ids
        return collate(
            [self.input_ids[i] for i in indices],
            pad_id=pad_id,
            labels=labels,
            token_types=None if types is None else [types[i] for i in indices],
            segments=self.segments,
        )


def encode_texts(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    pairs: Sequence[str] | None = None,
) -> Encoded:
    """Tokenize once, without padding; with ``pairs`` as the tokenizer's pair input.

    A single text longer than ``max_length`` keeps its first tokens and the closing special
    token; a pair is cut longest-first (the longer text loses tokens until both fit), as the
    tokenizer does it.
    """
    if pairs is None:
        full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)[
            "input_ids"
        ]
        truncated = sum(1 for ids in full if len(ids) > max_length)
        if truncated:
            sep = full[0][-1:]  # keep the closing special token after the cut
            full = [
                ids if len(ids) <= max_length else ids[: max_length - len(sep)] + sep
                for ids in full
            ]
        return Encoded(input_ids=full, truncated=truncated)
    if len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} second texts")
    whole = tokenizer(
        list(texts), list(pairs), add_special_tokens=True, truncation=False, verbose=False,
        return_token_type_ids=True,
    )  # fmt: skip
    ids, types = list(whole["input_ids"]), list(whole["token_type_ids"])
    long = [i for i, row in enumerate(ids) if len(row) > max_length]
    if long:
        cut = tokenizer(
            [texts[i] for i in long], [pairs[i] for i in long], add_special_tokens=True,
            truncation="longest_first", max_length=max_length, verbose=False,
            return_token_type_ids=True,
        )  # fmt: skip
        for j, i in enumerate(long):
            ids[i], types[i] = cut["input_ids"][j], cut["token_type_ids"][j]
    return Encoded(input_ids=ids, truncated=len(long), token_type_ids=types)


IGNORE_INDEX = -100  # a token label the loss skips (cross-entropy's ignore_index)


def _label_tensor(labels: Sequence[Any], width: int) -> torch.Tensor:
    """Class indices as int64; regression targets (floats) as float32; token labels (a list per
    example) as int64, padded to ``width`` with :data:`IGNORE_INDEX`."""
    if labels and isinstance(labels[0], list | tuple):
        out = torch.full((len(labels), width), IGNORE_INDEX, dtype=torch.long)
        for row, tokens in enumerate(labels):
            out[row, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        return out
    if any(isinstance(v, float) for v in labels):
        return torch.as_tensor(labels, dtype=torch.float32)
    return torch.as_tensor(labels, dtype=torch.long)


def collate(
    sequences: Sequence[Sequence[int]],
    *,
    pad_id: int,
    labels: Sequence[Any] | None = None,
    token_types: Sequence[Sequence[int]] | None = None,
    segments: bool = True,
) -> dict[str, torch.Tensor]:
    """Pad (on the right) to the longest sequence of the batch; token-type ids are explicit
    unless ``segments`` is False."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    token_type_ids = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
        if token_types is not None:
            token_type_ids[row, : len(seq)] = torch.as_tensor(token_types[row], dtype=torch.long)
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if segments:
        batch["token_type_ids"] = token_type_ids
    if labels is not None:
        batch["labels"] = _label_tensor(labels, width)
    return batch


def padded_batches(
    encoded: Encoded, *, batch_size: int, pad_id: int
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Inference batches sorted by length (least padding); yields original indices with each."""
    order = sorted(range(len(encoded.input_ids)), key=lambda i: len(encoded.input_ids[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, encoded.batch(idx, pad_id=pad_id)
