"""The attention kernel, the optimizer and the learning-rate schedule (precision: ``trustune.precision``)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from trustune.config import Attention, Trainable, TrainConfig
from trustune.models.weights import is_head_name
from trustune.precision import cpu_has_fast_bf16, resolve_precision

__all__ = [
    "apply_trainable",
    "build_optimizer",
    "build_scheduler",
    "cpu_has_fast_bf16",
    "head_parameter_names",
    "resolve_attention",
    "resolve_precision",
]

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")


def resolve_attention(attention: Attention, *, cuda: bool) -> str:
    """The ``attn_implementation`` for training: ``auto`` is eager on CPU, SDPA on GPU."""
    if attention is Attention.AUTO:
        return "sdpa" if cuda else "eager"
    return str(attention.value)


def head_parameter_names(model: torch.nn.Module) -> set[str]:
    """The parameters of the task head: everything outside the pretrained base model, plus
    the base model's pooler (``bert.pooler``, which checkpoints of sentence encoders ship
    untrained)."""
    prefix = str(getattr(model, "base_model_prefix", "") or "")
    names = {name for name, _ in model.named_parameters()}
    if not prefix or not any(name.startswith(f"{prefix}.") for name in names):
        return set()  # not a head-on-base model: no head to tell apart
    return {n for n in names if is_head_name(n, prefix)}


def apply_trainable(model: torch.nn.Module, trainable: Trainable) -> int:
    """Freeze what ``trainable`` leaves out (``bitfit``: all but biases, LayerNorm and the
    head); returns the number of trainable parameters."""
    if trainable is Trainable.BITFIT:
        head = head_parameter_names(model)
        for name, param in model.named_parameters():
            if not (name in head or name.endswith(_NO_DECAY)):
                param.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW without decay on biases and norms, the head at ``head_lr``; the fused kernel where
    torch has one.

    The fused kernel steps all parameters in one pass: on CPU it is ~6x faster than the
    per-parameter loop, and for a 22M-parameter model the optimizer step is a third of a step.
    The schedule scales every group's peak learning rate alike.
    """
    head = head_parameter_names(model) if config.head_lr is not None else set()
    grouped: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            grouped.setdefault((name in head, name.endswith(_NO_DECAY)), []).append(param)
    groups = [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else config.weight_decay,
            "lr": config.head_lr if in_head else config.lr,
        }
        for (in_head, no_decay), params in sorted(grouped.items())
    ]
    kwargs: dict[str, Any] = {"lr": config.lr}
    if "fused" in inspect.signature(torch.optim.AdamW).parameters:
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_ratio: float
) -> Any:
    """Linear warm-up, then linear decay to zero."""
    from transformers import get_linear_schedule_with_warmup

    warmup = round(total_steps * warmup_ratio)
    return get_linear_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
    )
