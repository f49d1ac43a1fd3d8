"""The optimizer's parameter groups: weight decay, and the head's own learning rate."""

from __future__ import annotations

import pytest
import torch

from trustune.config import RunConfig, Trainable, TrainConfig
from trustune.errors import ConfigError
from trustune.train.setup import (
    apply_trainable,
    build_optimizer,
    build_scheduler,
    head_parameter_names,
)

HEAD = {
    "bert.pooler.dense.weight",
    "bert.pooler.dense.bias",
    "classifier.weight",
    "classifier.bias",
}


def tiny_classifier() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def lr_of(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


def test_head_is_the_classifier_and_the_pooler() -> None:
    assert head_parameter_names(tiny_classifier()) == HEAD
    assert head_parameter_names(torch.nn.Linear(2, 2)) == set()  # no base model: no head


def test_head_lr_applies_to_the_head_only_and_the_schedule_keeps_the_ratio() -> None:
    model = tiny_classifier()
    model.bert.embeddings.requires_grad_(False)  # frozen parameters stay out of every group
    optimizer = build_optimizer(model, TrainConfig(lr=1e-4, head_lr=1e-2, weight_decay=0.1))
    named = dict(model.named_parameters())
    lrs = lr_of(optimizer)
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert {n for n, p in named.items() if id(p) in lrs} == trainable  # each once
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(trainable)
    for name in trainable:
        assert lrs[id(named[name])] == (1e-2 if name in HEAD else 1e-4), name
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay[id(named["classifier.bias"])] == 0.0
    assert decay[id(named["classifier.weight"])] == 0.1
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_ratio=0.2)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    head_lr = lr_of(optimizer)[id(named["classifier.weight"])]
    body_lr = lr_of(optimizer)[id(named["bert.encoder.layer.0.output.dense.weight"])]
    assert 0 < body_lr < 1e-4 and head_lr == pytest.approx(100 * body_lr)


def test_without_head_lr_every_parameter_has_lr() -> None:
    model = tiny_classifier()
    optimizer = build_optimizer(model, TrainConfig(lr=3e-5))
    assert set(lr_of(optimizer).values()) == {3e-5}
    assert len(optimizer.param_groups) == 2  # decay and no decay, as before head_lr existed


@pytest.mark.parametrize("value", [0, -1e-3])
def test_head_lr_must_be_positive(value: float) -> None:
    with pytest.raises(ConfigError, match=r"train\.head_lr"):
        RunConfig.from_dict({"train": {"head_lr": value}})


def test_bitfit_trains_biases_norms_and_head_only() -> None:
    model = tiny_classifier()
    total = sum(p.numel() for p in model.parameters())
    assert apply_trainable(model, Trainable.ALL) == total
    count = apply_trainable(model, Trainable.BITFIT)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert count == sum(p.numel() for p in model.parameters() if p.requires_grad) < total / 3
    assert trainable >= HEAD
    assert "bert.encoder.layer.0.attention.self.query.bias" in trainable
    assert "bert.encoder.layer.0.output.LayerNorm.weight" in trainable
    assert "bert.encoder.layer.0.attention.self.query.weight" not in trainable
    assert "bert.embeddings.word_embeddings.weight" not in trainable


def test_trainable_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"train\.trainable"):
        RunConfig.from_dict({"train": {"trainable": "lora"}})
