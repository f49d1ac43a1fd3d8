"""The sealed-file format (version 1): a fixed header, then AES-256-GCM chunks.

Byte layout (integers big-endian; docs/security.md has the full specification)::

    header (32 bytes)
      0   8  magic            b"TRUSTENC"
      8   2  format version   1
     10   1  algorithm        1 = AES-256-GCM
     11   1  reserved         0
     12   4  chunk size       plaintext bytes per chunk (the last chunk may be shorter)
     16  16  artifact id      random, the same for every file of one artifact
    chunk i (i = 0, 1, ...)
      12 bytes nonce (random) | ciphertext (chunk size bytes, fewer in the last chunk) | 16 bytes tag

The associated data of chunk ``i`` is ``header | u64 i | u8 final | file name (UTF-8)``, so a
changed header, a chunk moved within a file or to another file or artifact, a dropped final
chunk or a flipped byte all fail authentication. An empty file is one final chunk of 0 bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trustune.errors import IntegrityError, SecurityError
from trustune.security.keys import SecretKey

__all__ = [
    "ALGORITHM_AES_256_GCM",
    "CHUNK_OVERHEAD",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "NONCE_BYTES",
    "TAG_BYTES",
    "SealedHeader",
    "check_artifact",
    "chunk_aad",
    "chunk_error",
    "layout",
    "open_file",
    "open_stream",
    "plaintext_size",
    "read_header",
    "seal_file",
    "seal_stream",
]

MAGIC = b"TRUSTENC"
FORMAT_VERSION = 1
ALGORITHM_AES_256_GCM = 1
_HEADER = struct.Struct(">8sHBBI16s")
HEADER_BYTES = _HEADER.size  # 32
NONCE_BYTES = 12
TAG_BYTES = 16
CHUNK_OVERHEAD = NONCE_BYTES + TAG_BYTES
DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB: bounded memory, negligible overhead (28 bytes per chunk)
MAX_CHUNK_SIZE = 64 << 20  # a reader refuses bigger chunks (memory bound against crafted headers)
_INDEX = struct.Struct(">QB")


@dataclass(frozen=True)
class SealedHeader:
    """The 32-byte header of a sealed file."""

    artifact_id: bytes
    chunk_size: int = DEFAULT_CHUNK_SIZE
    version: int = FORMAT_VERSION
    algorithm: int = ALGORITHM_AES_256_GCM

    def pack(self) -> bytes:
        if len(self.artifact_id) != 16:
            raise SecurityError("an artifact id has 16 bytes")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise SecurityError(f"chunk size must be between 1 and {MAX_CHUNK_SIZE} bytes")
        return _HEADER.pack(
            MAGIC, self.version, self.algorithm, 0, self.chunk_size, self.artifact_id
        )

    @classmethod
    def parse(cls, data: bytes, *, name: str) -> SealedHeader:
        """Parse and check a header; ``name`` identifies the file in errors."""
        if len(data) < HEADER_BYTES or data[:8] != MAGIC:
            raise IntegrityError(
                f"{name} is not a trustune sealed file (no TRUSTENC header): it is damaged or "
                "was replaced"
            )
        _, version, algorithm, reserved, chunk_size, artifact_id = _HEADER.unpack(
            data[:HEADER_BYTES]
        )
        if version != FORMAT_VERSION:
            raise SecurityError(
                f"{name} uses sealed-file format version {version}; this trustune reads version "
                f"{FORMAT_VERSION} (upgrade trustune)"
            )
        if algorithm != ALGORITHM_AES_256_GCM or reserved != 0:
            raise IntegrityError(f"{name}: unknown algorithm {algorithm} in the header (damaged)")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise IntegrityError(f"{name}: chunk size {chunk_size} in the header is out of range")
        return cls(artifact_id=artifact_id, chunk_size=chunk_size)


def chunk_aad(header: bytes, index: int, final: bool, name: str) -> bytes:
    """Associated data of one chunk: binds header (artifact id), position, finality and name."""
    return header + _INDEX.pack(index, 1 if final else 0) + name.encode("utf-8")


def _aead(data_key: SecretKey) -> AESGCM:
    return AESGCM(data_key.reveal())


def seal_stream(
    src: BinaryIO, dst: BinaryIO, *, data_key: SecretKey, artifact_id: bytes, name: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE, random: Callable[[int], bytes] = os.urandom,
) -> int:  # fmt: skip
    """Encrypt ``src`` into ``dst`` chunk by chunk (memory: three chunks); returns bytes written.

    ``random`` supplies the nonces; replace it for reproducible tests only.
    """
    header = SealedHeader(artifact_id=artifact_id, chunk_size=chunk_size).pack()
    aead = _aead(data_key)
    dst.write(header)
    written = HEADER_BYTES
    current, ahead = bytearray(chunk_size), bytearray(chunk_size)
    out = bytearray(chunk_size + TAG_BYTES)
    n_current = _read_exact(src, memoryview(current))
    index = 0
    while True:
        n_ahead = _read_exact(src, memoryview(ahead)) if n_current == chunk_size else 0
        final = not n_ahead
        nonce = random(NONCE_BYTES)
        aad = chunk_aad(header, index, final, name)
        view = memoryview(out)[: n_current + TAG_BYTES]
        aead.encrypt_into(nonce, memoryview(current)[:n_current], aad, view)
        dst.write(nonce)
        dst.write(view)
        written += NONCE_BYTES + n_current + TAG_BYTES
        if final:
            return written
        current, ahead, n_current = ahead, current, n_ahead or 0
        index += 1


def _read_exact(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src`` (pipes and sockets may return less per call); bytes read."""
    filled = 0
    while filled < len(view):
        n = src.readinto(view[filled:])  # type: ignore[attr-defined]
        if not n:
            break
        filled += n
    return filled


def layout(body: int, chunk_size: int, name: str) -> tuple[int, int]:
    """Chunks in a body (file minus header) of ``body`` bytes, and plaintext bytes of the last."""
    full = chunk_size + CHUNK_OVERHEAD
    chunks = max(1, -(-body // full))
    last = body - (chunks - 1) * full - CHUNK_OVERHEAD
    if last < 0:
        raise IntegrityError(
            f"{name} is truncated: its last chunk is {last + CHUNK_OVERHEAD} bytes, shorter than "
            f"nonce and tag ({CHUNK_OVERHEAD} bytes)"
        )
    return chunks, last


def chunk_error(name: str, index: int, chunks: int) -> IntegrityError:
    return IntegrityError(
        f"{name}: chunk {index + 1} of {chunks} fails authentication; the file was changed, "
        "truncated, reordered or mixed with another file or artifact. Restore it from a good copy"
    )


def check_artifact(header: SealedHeader, artifact_id: bytes, name: str) -> None:
    if header.artifact_id != artifact_id:
        raise IntegrityError(
            f"{name} belongs to another artifact (artifact id {header.artifact_id.hex()}, "
            f"expected {artifact_id.hex()}); it was copied in from another encrypted run"
        )


def open_stream(
    src: BinaryIO, dst: BinaryIO, *, size: int, data_key: SecretKey, artifact_id: bytes, name: str
) -> int:
    """Decrypt a sealed file of ``size`` bytes from ``src`` into ``dst``; returns plaintext bytes.

    Memory stays at one chunk. A failure raises before the damaged chunk is written, but earlier
    chunks are already in ``dst``: write to a temporary file and keep it only on success.
    """
    head = bytearray(HEADER_BYTES)
    raw = bytes(head[: _read_exact(src, memoryview(head))])
    header = SealedHeader.parse(raw, name=name)
    check_artifact(header, artifact_id, name)
    chunks, last = layout(size - HEADER_BYTES, header.chunk_size, name)
    aead = _aead(data_key)
    buffer = bytearray(header.chunk_size + CHUNK_OVERHEAD)
    out = bytearray(header.chunk_size)
    total = 0
    for index in range(chunks):
        final = index == chunks - 1
        plain = last if final else header.chunk_size
        view = memoryview(buffer)[: plain + CHUNK_OVERHEAD]
        if _read_exact(src, view) != len(view):
            raise IntegrityError(f"{name} is truncated (chunk {index + 1} of {chunks})")
        target = memoryview(out)[:plain]
        try:
            aead.decrypt_into(
                view[:NONCE_BYTES], view[NONCE_BYTES:], chunk_aad(raw, index, final, name), target
            )
        except InvalidTag:
            raise chunk_error(name, index, chunks) from None
        dst.write(target)
        total += plain
    return total


def seal_file(
    src: Path, dst: Path, *, data_key: SecretKey, artifact_id: bytes, name: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:  # fmt: skip
    """Encrypt one file into another (``dst`` is created; the caller makes it atomic)."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        written = seal_stream(
            fin, fout, data_key=data_key, artifact_id=artifact_id, name=name, chunk_size=chunk_size
        )
        fout.flush()
        os.fsync(fout.fileno())
    return written


def open_file(src: Path, dst: Path, *, data_key: SecretKey, artifact_id: bytes, name: str) -> int:
    """Decrypt one sealed file into another (``dst`` is created; the caller makes it atomic)."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        total = open_stream(
            fin, fout, size=os.fstat(fin.fileno()).st_size, data_key=data_key,
            artifact_id=artifact_id, name=name,
        )  # fmt: skip
        fout.flush()
        os.fsync(fout.fileno())
    return total


def read_header(path: Path, *, name: str) -> SealedHeader:
    with open(path, "rb") as f:
        return SealedHeader.parse(f.read(HEADER_BYTES), name=name)


def plaintext_size(sealed_size: int, chunk_size: int, *, name: str = "sealed file") -> int:
    """Plaintext bytes of a sealed file of ``sealed_size`` bytes."""
    chunks, last = layout(sealed_size - HEADER_BYTES, chunk_size, name)
    return (chunks - 1) * chunk_size + last
