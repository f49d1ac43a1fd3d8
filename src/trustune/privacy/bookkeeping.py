"""Book-keeping ghost clipping: the clipped gradient sum without a second backward pass.

Ghost clipping first finds each example's gradient norm (Opacus's norm hooks), then needs
``sum_b c_b * grad(loss_b)`` with ``c_b = min(1, C / norm_b)``. Opacus gets it from a second
backward pass over ``sum_b c_b * loss_b``, which recomputes every activation gradient. For the
layers a BERT-family model trains (``Linear``, ``LayerNorm``) a weight gradient is a
contraction of the layer's input with the gradient at its output, and the first pass sees
both: keeping them ("book-keeping", Bu et al. 2023) turns the clipped sum into one matrix
product per layer, and the second backward pass is not needed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BookKeeper"]

_SUPPORTED = (nn.Linear, nn.LayerNorm)


def _owners(model: nn.Module) -> list[nn.Module]:
    """The modules that directly own a trainable parameter."""
    return [m for m in model.modules() if any(p.requires_grad for p in m.parameters(recurse=False))]


class BookKeeper:
    """Keeps each trainable layer's input and output gradient during the norm pass, then
    writes the clipped per-example gradient sum into ``.grad``."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = _owners(model)
        self.inputs: dict[nn.Module, list[torch.Tensor]] = {m: [] for m in self.modules}
        self.grads: dict[nn.Module, list[torch.Tensor]] = {m: [] for m in self.modules}
        self.handles: list[Any] = []
        for module in self.modules:
            self.handles.append(module.register_forward_hook(self._keep_input))
            self.handles.append(module.register_full_backward_hook(self._keep_grad))

    @staticmethod
    def applies(model: nn.Module) -> bool:
        """Every trainable parameter sits in a layer whose weight gradient we can contract."""
        return all(type(m) in _SUPPORTED for m in _owners(model))

    def _keep_input(self, module: nn.Module, args: Any, output: Any) -> None:
        if module.training and torch.is_grad_enabled():
            self.inputs[module].append(args[0].detach())

    def _keep_grad(self, module: nn.Module, grad_input: Any, grad_output: Any) -> None:
        if grad_output[0] is not None:
            self.grads[module].append(grad_output[0].detach())

    def clear(self) -> None:
        for module in self.modules:
            self.inputs[module].clear()
            self.grads[module].clear()

    def accumulate(self, coefficients: torch.Tensor) -> None:
        """Add ``sum_b c_b * grad(loss_b)`` to each parameter's ``.grad``.

        The norm pass differentiated ``mean_b loss_b``, so the kept output gradients carry a
        factor 1/B; ``c_b * B`` undoes it and applies the clipping at once.
        """
        weight = coefficients * coefficients.shape[0]  # (batch,)
        try:
            for module in self.modules:
                inputs, grads = self.inputs[module], self.grads[module]
                if len(inputs) != len(grads):
                    raise RuntimeError(
                        f"{type(module).__name__}: {len(inputs)} inputs kept, {len(grads)} gradients"
                    )
                # backward runs in reverse call order: pair the first input with the last gradient
                for x, g in zip(inputs, reversed(grads), strict=True):
                    scaled = g * weight.view(-1, *([1] * (g.dim() - 1)))  # (batch, ..., out)
                    self._add(module, x, scaled)
        finally:
            self.clear()

    @staticmethod
    def _add(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
        def wanted(name: str) -> nn.Parameter | None:
            param = getattr(module, name, None)
            return param if isinstance(param, nn.Parameter) and param.requires_grad else None

        grads: dict[str, torch.Tensor] = {}
        if isinstance(module, nn.Linear):
            g2, x2 = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])  # (rows, out/in)
            if wanted("weight") is not None:  # a frozen weight (bitfit) costs no matmul
                grads["weight"] = g2.t() @ x2
            grads["bias"] = g2.sum(0)
        else:
            assert isinstance(module, nn.LayerNorm)
            shape = module.normalized_shape
            if wanted("weight") is not None:
                normalized = F.layer_norm(x, shape, eps=module.eps)
                grads["weight"] = (g * normalized).reshape(-1, *shape).sum(0)
            grads["bias"] = g.reshape(-1, *shape).sum(0)
        for name, value in grads.items():
            param = wanted(name)
            if param is not None:
                param.grad = value if param.grad is None else param.grad + value

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.clear()
