"""Checking a safetensors header before any library parses the file.

A safetensors file is ``u64 little-endian N | N bytes of JSON header | data``; the header maps
tensor names to dtype, shape and ``data_offsets`` (begin, end) within the data. A crafted or
damaged file (a header larger than the file, offsets out of range or overlapping, a pickle
renamed ``.safetensors``) is refused here with a message, not handed on to crash a parser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustune.errors import ModelError, UnsafeModelError

__all__ = [
    "DTYPE_BITS",
    "MAX_HEADER_BYTES",
    "SafetensorsHeader",
    "TensorEntry",
    "parse_header",
    "read_header",
]

# Bits per element of every dtype the safetensors format defines.
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip
MAX_HEADER_BYTES = 100_000_000  # the limit of the safetensors library itself
_CONVERT = (
    "trustune loads safetensors only; convert once in a trusted environment with "
    "model.save_pretrained(folder, safe_serialization=True)"
)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets within the data section
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    data_start: int  # 8 + header length: where the data section begins in the file
    tensors: tuple[TensorEntry, ...]  # sorted by offset
    metadata: dict[str, str]


def _fail(name: str, why: str) -> ModelError:
    return ModelError(f"{name} is not a valid safetensors file: {why}")


def _check_not_pickle(start: bytes, name: str) -> None:
    if len(start) >= 2 and start[0] == 0x80 and 2 <= start[1] <= 5:
        raise UnsafeModelError(f"{name} is a pickle file, not safetensors; {_CONVERT}")
    if start[:4] == b"PK\x03\x04":
        raise UnsafeModelError(
            f"{name} is a zip archive (PyTorch's pickle-based torch.save format), not "
            f"safetensors; {_CONVERT}"
        )


def _entry(key: str, value: Any, data_size: int, name: str) -> TensorEntry:
    if not isinstance(value, Mapping) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise _fail(name, f"tensor {key!r} needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if dtype not in DTYPE_BITS:
        raise _fail(name, f"tensor {key!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _fail(name, f"tensor {key!r} has a bad shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise _fail(name, f"tensor {key!r} has bad data_offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise _fail(
            name,
            f"tensor {key!r} lies at bytes {begin}..{end}, outside the data ({data_size} bytes)",
        )
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        raise _fail(
            name, f"tensor {key!r} ({dtype} {shape}) needs {bits / 8:g} bytes, not {end - begin}"
        )
    return TensorEntry(key, dtype, tuple(shape), begin, end)


def parse_header(head: bytes | memoryview, file_size: int, *, name: str) -> SafetensorsHeader:
    """Check the header at the start of a safetensors file of ``file_size`` bytes.

    ``head`` holds at least the first 8 bytes; when the header fits in the file it must hold
    the whole header too (``8 + N`` bytes).
    """
    start = bytes(head[:8])
    _check_not_pickle(start, name)
    if file_size < 8 or len(start) < 8:
        raise _fail(name, f"{file_size} bytes is too short for a header")
    length = int.from_bytes(start, "little")
    if length > file_size - 8:
        raise _fail(
            name, f"header length {length} is larger than the file ({file_size} bytes); truncated?"
        )
    if length > MAX_HEADER_BYTES:
        raise _fail(name, f"header length {length} exceeds {MAX_HEADER_BYTES} bytes")
    raw = bytes(head[8 : 8 + length])
    if len(raw) != length:
        raise _fail(name, "the header is cut short")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(name, f"the header is not JSON ({e.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise _fail(name, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _fail(name, "__metadata__ must map strings to strings")
    data_size = file_size - 8 - length
    entries = sorted(
        (_entry(k, v, data_size, name) for k, v in header.items()), key=lambda t: (t.begin, t.end)
    )
    position = 0
    for entry in entries:
        if entry.begin < position:
            raise _fail(name, f"tensor {entry.name!r} overlaps the tensor before it")
        if entry.begin > position:
            raise _fail(name, f"data bytes {position}..{entry.begin} belong to no tensor")
        position = entry.end
    if position != data_size:
        raise _fail(name, f"data bytes {position}..{data_size} belong to no tensor")
    return SafetensorsHeader(data_start=8 + length, tensors=tuple(entries), metadata=metadata)


def read_header(path: Path) -> SafetensorsHeader:
    """Check the header of a safetensors file on disk (reads the header only)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            start = f.read(8)
            length = int.from_bytes(start, "little") if len(start) == 8 else 0
            fits = len(start) == 8 and length <= min(size - 8, MAX_HEADER_BYTES)
            head = start + (f.read(length) if fits else b"")
    except OSError as e:
        raise ModelError(f"{path} cannot be read: {e.strerror or e}") from None
    return parse_header(head, size, name=str(path))
