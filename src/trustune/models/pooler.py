"""The starting point of a new head's pooler (``model.pooler``)."""

from __future__ import annotations

from typing import Any

import torch

from trustune.config import PoolerInit

__all__ = ["init_pooler"]


def init_pooler(model: Any, how: PoolerInit) -> bool:
    """Re-initialise the base model's pooler as transformers initialises a new one (``reinit``):
    normal weights of std ``initializer_range``, zero biases.

    Returns whether a pooler was changed; a model without one (``pretrained``, or an
    architecture that classifies from another token) is left as loaded. The result still loads
    in plain transformers: only the starting values change, not the architecture.
    """
    if how is PoolerInit.PRETRAINED:
        return False
    base = getattr(model, "base_model", None)
    pooler = getattr(base, "pooler", None)
    if not isinstance(pooler, torch.nn.Module):
        return False
    std = float(getattr(model.config, "initializer_range", 0.02))
    changed = False
    with torch.no_grad():
        for module in pooler.modules():
            if isinstance(module, torch.nn.Linear):  # as transformers initialises a new Linear
                torch.nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
                changed = True
    return changed
