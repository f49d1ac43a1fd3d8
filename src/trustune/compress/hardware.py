"""The CPU features that decide which compressed model runs fast here, read from the kernel.

int8 matrix products are fast with AVX512-VNNI (or AVX-VNNI) and fastest with AMX; without
VNNI, int8 can be slower than fp32 (onnxruntime issues #17389, #6732). bf16 is native with
AVX512-BF16 or AMX-BF16; elsewhere it is emulated and slower than fp32.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

__all__ = ["bf16_is_native", "cpu_features", "int8_is_fast"]

_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512_bf16": "avx512_bf16",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
}


@functools.cache
def cpu_features() -> dict[str, Any]:
    """``{"model": ..., "cores": ..., "avx512_vnni": bool, "amx_int8": bool, ...}``."""
    import os

    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "model name" and value.strip():
            model = value.strip()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    found: dict[str, Any] = {"model": model, "cores": cores}
    found.update({name: flag in flags for name, flag in _FLAGS.items()})
    return found


def int8_is_fast(features: dict[str, Any] | None = None) -> bool:
    f = features or cpu_features()
    return bool(f.get("avx512_vnni") or f.get("avx_vnni") or f.get("amx_int8"))


def bf16_is_native(features: dict[str, Any] | None = None) -> bool:
    if features is None:
        from trustune.precision import cpu_has_fast_bf16

        return cpu_has_fast_bf16()  # what training's --precision auto decides by, too
    return bool(features.get("avx512_bf16") or features.get("amx_bf16"))
