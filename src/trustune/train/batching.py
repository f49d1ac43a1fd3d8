"""Tokenized examples, length-grouped batches and dynamic padding."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Encoded", "LengthGroupedBatchSampler", "collate", "encode_texts", "padded_batches"]


@dataclass
class Encoded:
    """Token ids of texts (unpadded) and how many texts were cut at ``max_length``."""

    input_ids: list[list[int]]
    truncated: int

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def encode_texts(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> Encoded:
    """Tokenize once, without padding; padding happens per batch."""
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)[
        "input_ids"
    ]
    truncated = sum(1 for ids in full if len(ids) > max_length)
    if truncated:
        sep = full[0][-1:]  # keep the closing special token after the cut
        full = [
            ids if len(ids) <= max_length else ids[: max_length - len(sep)] + sep for ids in full
        ]
    return Encoded(input_ids=full, truncated=truncated)


def collate(
    sequences: Sequence[Sequence[int]], *, pad_id: int, labels: Sequence[int] | None = None
) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence of the batch; position and token-type ids are explicit."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": torch.zeros_like(input_ids),
    }
    if labels is not None:
        batch["labels"] = torch.as_tensor(labels, dtype=torch.long)
    return batch


class LengthGroupedBatchSampler:
    """Batches of similar length in a seeded random order; resumable at any batch.

    Indices are shuffled, cut into mega-batches of ``batch_size * group`` that are each sorted
    by length, split into batches, and the batch order is shuffled again, so every epoch sees
    all examples once with little padding. With ``group_by_length=False`` batches are plain
    random. The order depends on ``seed`` and ``epoch`` only, so a resumed run replays it.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        group: int = 50,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.group = group
        self.epoch = 0
        self.start_batch = 0

    def position(self, epoch: int, *, start_batch: int = 0) -> None:
        """Where the next iteration starts (not ``set_epoch``: Accelerate calls that itself)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, in order."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        if not self.group_by_length:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        span = self.batch_size * self.group
        batches: list[list[int]] = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=lambda i: self.lengths[i], reverse=True)
            batches.extend(
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            )
        shuffle = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffle]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.start_batch :]

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size) - self.start_batch


def padded_batches(
    encoded: Encoded, *, batch_size: int, pad_id: int
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Inference batches sorted by length (least padding); yields original indices with each."""
    order = sorted(range(len(encoded.input_ids)), key=lambda i: len(encoded.input_ids[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, collate([encoded.input_ids[i] for i in idx], pad_id=pad_id)
