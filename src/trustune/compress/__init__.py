"""``trustune compress``: smaller, faster runs (ONNX Runtime, int8, bf16, pruning, distillation)
with lineage and an accuracy guard. Importing this package imports no torch; the methods load
when a compression runs or the methods are listed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustune.compress.methods import (
    Compressed,
    Job,
    Method,
    MethodSpec,
    describe_methods,
    known_methods,
    parse_method,
    register_method,
)
from trustune.compress.settings import CompressSettings

if TYPE_CHECKING:
    from trustune.compress.compare import EfficiencyTable, measure_efficiency
    from trustune.compress.runner import CompressResult, compress

__all__ = [
    "CompressResult",
    "CompressSettings",
    "Compressed",
    "EfficiencyTable",
    "Job",
    "Method",
    "MethodSpec",
    "compress",
    "describe_methods",
    "known_methods",
    "measure_efficiency",
    "parse_method",
    "register_method",
]


_LAZY = {
    "compress": "trustune.compress.runner",
    "CompressResult": "trustune.compress.runner",
    "measure_efficiency": "trustune.compress.compare",
    "EfficiencyTable": "trustune.compress.compare",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trustune.compress' has no attribute {name!r}")
