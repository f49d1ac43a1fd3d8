"""Choosing the arithmetic: bf16 where the hardware multiplies it natively, else fp32.

Below training, explanations and inference, which all ask it.
"""

from __future__ import annotations

import torch

from trustune.config import Precision

__all__ = ["cpu_has_fast_bf16", "resolve_precision"]


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX or AVX512-BF16)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: Precision, *, cuda: bool) -> Precision:
    """``auto``: bf16 autocast where the hardware multiplies bf16 natively (a GPU that supports
    it, or a CPU with AMX / AVX512-BF16), else fp32 (BENCHMARKS.md has the measurements)."""
    if precision is not Precision.AUTO:
        return precision
    if cuda:
        return Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP32
    return Precision.BF16 if cpu_has_fast_bf16() else Precision.FP32
