"""Decrypting a whole sealed file into memory, on several threads, without copying ciphertext.

The file is memory-mapped read-only; chunks are claimed from a shared counter by any number of
threads and decrypted straight into one result buffer (AES-GCM in ``cryptography`` releases the
GIL). A caller can start helpers early and join the work later (``SealedFileOpener.finish``):
``trustune.load`` decrypts the weights while it builds the tokenizer.
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trustune.errors import IntegrityError
from trustune.security.format import (
    CHUNK_OVERHEAD,
    HEADER_BYTES,
    NONCE_BYTES,
    SealedHeader,
    check_artifact,
    chunk_aad,
    chunk_error,
    layout,
)
from trustune.security.keys import SecretKey

__all__ = ["SealedFileOpener", "decrypt_all", "default_workers", "read_sealed"]


def default_workers() -> int:
    """Threads for decrypting one file: one per core, at most 4 (memory bandwidth bound)."""
    return max(1, min(4, os.cpu_count() or 1))


class SealedFileOpener:
    """One sealed file being decrypted into memory by whichever threads call :meth:`work`."""

    def __init__(self, path: Path, *, data_key: SecretKey, artifact_id: bytes, name: str) -> None:
        self.name = name
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_BYTES:
                raise IntegrityError(f"{name} is truncated ({size} bytes, less than its header)")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._header = bytes(self._map[:HEADER_BYTES])
            header = SealedHeader.parse(self._header, name=name)
            check_artifact(header, artifact_id, name)
            self._chunk_size = header.chunk_size
            self.chunks, self._last = layout(size - HEADER_BYTES, header.chunk_size, name)
        except BaseException:
            self._map.close()
            raise
        self.result = np.empty((self.chunks - 1) * self._chunk_size + self._last, dtype=np.uint8)
        self._aead = AESGCM(data_key.reveal())
        self._source = memoryview(self._map)
        self._target = memoryview(self.result)  # type: ignore[arg-type]
        self._next = itertools.count()  # next() on a count is atomic under the GIL
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._closed = False
        self._error: BaseException | None = None

    def _open_chunk(self, index: int) -> None:
        cs, final = self._chunk_size, index == self.chunks - 1
        start = HEADER_BYTES + index * (cs + CHUNK_OVERHEAD)
        plain = self._last if final else cs
        nonce = self._source[start : start + NONCE_BYTES]
        sealed = self._source[start + NONCE_BYTES : start + CHUNK_OVERHEAD + plain]
        target = self._target[index * cs : index * cs + plain]
        try:
            aad = chunk_aad(self._header, index, final, self.name)
            self._aead.decrypt_into(nonce, sealed, aad, target)
        except InvalidTag:
            raise chunk_error(self.name, index, self.chunks) from None
        finally:
            nonce.release()
            sealed.release()
            target.release()

    def work(self) -> None:
        """Decrypt chunks until none are left (or one fails); safe from several threads."""
        with self._lock:
            if self._closed:
                return
            self._active += 1
        try:
            while self._error is None:
                index = next(self._next)
                if index >= self.chunks:
                    break
                self._open_chunk(index)
        except BaseException as e:
            with self._lock:
                self._error = self._error or e
        finally:
            with self._lock:
                self._active -= 1
                self._idle.notify_all()

    def finish(self) -> np.ndarray:
        """Join the work, wait for the other threads, and return the plaintext (or raise)."""
        self.work()
        with self._lock:
            while self._active:
                self._idle.wait()
            self._closed = True
        self._target.release()
        self._source.release()
        self._map.close()
        if self._error is not None:
            raise self._error
        return self.result


def decrypt_all(opener: SealedFileOpener, *, workers: int | None = None) -> np.ndarray:
    """Finish ``opener`` on this thread and ``workers - 1`` helpers (default: one per core)."""
    helpers = min(workers or default_workers(), opener.chunks) - 1
    if helpers <= 0:
        return opener.finish()
    with ThreadPoolExecutor(helpers, thread_name_prefix="trustune-open") as pool:
        for _ in range(helpers):
            pool.submit(opener.work)
        return opener.finish()


def read_sealed(
    path: Path, *, data_key: SecretKey, artifact_id: bytes, name: str, workers: int | None = None
) -> np.ndarray:
    """Decrypt a whole sealed file into memory (a uint8 array); nothing is written to disk."""
    opener = SealedFileOpener(path, data_key=data_key, artifact_id=artifact_id, name=name)
    return decrypt_all(opener, workers=workers)
