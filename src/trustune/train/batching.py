"""Length-grouped training batches (encoding and padding live in :mod:`trustune.encoding`)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

__all__ = ["LengthGroupedBatchSampler"]


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
