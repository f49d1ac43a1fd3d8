from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trustune.encoding import collate, encode_texts
from trustune.train.batching import LengthGroupedBatchSampler


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), min_size=1, max_size=400),
    batch_size=st.integers(1, 17),
    group_by_length=st.booleans(),
)
def test_every_example_once_per_epoch(
    lengths: list[int], batch_size: int, group_by_length: bool
) -> None:
    sampler = LengthGroupedBatchSampler(
        lengths, batch_size=batch_size, seed=3, group_by_length=group_by_length, group=4
    )
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) == len(sampler)


def test_grouping_cuts_padding() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 60, (3000,), generator=gen).tolist()

    def padded(group: bool) -> int:
        sampler = LengthGroupedBatchSampler(lengths, batch_size=32, seed=1, group_by_length=group)
        return sum(max(lengths[i] for i in b) * len(b) for b in sampler)

    assert padded(True) < 0.6 * padded(False)


def test_order_is_seeded_and_resumable() -> None:
    lengths = list(range(1, 200))
    a = LengthGroupedBatchSampler(lengths, batch_size=8, seed=5)
    b = LengthGroupedBatchSampler(lengths, batch_size=8, seed=5)
    a.position(2)
    b.position(2, start_batch=7)
    assert list(a)[7:] == list(b)
    a.position(3)
    assert list(a) != list(b)


def test_collate_pads_and_masks() -> None:
    batch = collate([[101, 7, 102], [101, 102]], pad_id=0, labels=[1, 0])
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].shape == (2, 3)
    assert batch["labels"].tolist() == [1, 0]


def test_truncation_keeps_closing_token() -> None:
    from transformers import AutoTokenizer

    from trustune.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm").location)
    encoded = encode_texts(tokenizer, ["word " * 50, "short"], max_length=10)
    assert encoded.truncated == 1
    assert len(encoded.input_ids[0]) == 10
    assert encoded.input_ids[0][-1] == tokenizer.sep_token_id
