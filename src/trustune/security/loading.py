"""Opening a protected run for ``trustune.load``: verify its signature, decrypt it in memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from trustune.errors import ArtifactError, IntegrityError, MissingKeyError
from trustune.manifest import Manifest
from trustune.security.artifact import SealedRun, is_encrypted
from trustune.security.keys import ENV_KEY_FILE, KeySource, resolve_key
from trustune.security.signing import PublicKey, read_public_key, verify_run

__all__ = ["KeyLike", "PublicKeyLike", "VerifiedFolder", "open_protected_run"]

KeyLike = KeySource | str | os.PathLike[str]  # a key object, or the path of a key file
PublicKeyLike = PublicKey | str | os.PathLike[str]


class VerifiedFolder:
    """A plaintext model folder of a verified run: each file is read once, into memory, and must
    still have the SHA-256 that the verified manifest lists; the model is built from those bytes,
    so a file replaced after verification is caught, not loaded."""

    def __init__(self, run_dir: Path, folder: str, hashes: dict[str, str]) -> None:
        self._root = run_dir / folder
        self._prefix = folder.rstrip("/") + "/"
        self._hashes = hashes
        self.source = str(self._root)

    def names(self) -> list[str]:
        return [n[len(self._prefix) :] for n in self._hashes if n.startswith(self._prefix)]

    def size(self, name: str) -> int:
        return (self._root / name).stat().st_size

    def read(self, name: str) -> np.ndarray:
        path = self._root / name
        data = np.fromfile(path, dtype=np.uint8)  # writable: tensors can share it
        if hashlib.sha256(data.data).hexdigest() != self._hashes[self._prefix + name]:
            raise IntegrityError(
                f"{path} changed after the run's signature was verified; nothing was loaded. "
                "Restore it from a good copy"
            )
        return data

    def __repr__(self) -> str:
        return f"VerifiedFolder({self.source!r})"


def open_protected_run(
    run_dir: Path, manifest: Manifest, *, key: KeyLike | None = None,
    public_key: PublicKeyLike | None = None, causal: bool = False,
) -> tuple[Any, Any]:  # fmt: skip
    """The model and tokenizer of a run that is encrypted or must carry a valid signature.

    ``manifest`` is the one the caller read and will use: that one is verified. Nothing is
    decrypted to disk: sealed files become buffers, the weights tensors over them. ``causal``:
    the run holds a causal language model (a causal-lm run), opened with a left-padding
    tokenizer for generation.
    """
    from trustune.models import (
        load_causal_lm_from_files,
        load_chat_tokenizer_from_files,
        load_run_model_from_files,
        load_tokenizer_from_files,
    )

    compression = manifest.compression
    fmt = compression.format if compression else "transformers"
    transform = compression.load_transform if compression else None

    def open_model(files: Any) -> Any:
        if causal:
            return load_causal_lm_from_files(files)
        return load_run_model_from_files(files, fmt=fmt, transform=transform)

    def open_tokenizer(files: Any) -> Any:
        if causal:
            return load_chat_tokenizer_from_files(files, padding_side="left")
        return load_tokenizer_from_files(files)

    if public_key is not None:
        if not isinstance(public_key, PublicKey):
            public_key = read_public_key(public_key)
        verify_run(run_dir, public_key, manifest=manifest)
    if not is_encrypted(manifest):
        plain = VerifiedFolder(run_dir, "model", dict(manifest.files))
        _require_model(run_dir, plain.names())
        return open_model(plain), open_tokenizer(plain)
    source = resolve_key(key)
    if source is None:
        raise MissingKeyError(
            f"{run_dir} is encrypted; pass its key with --key-file KEY (key= in Python) or set "
            f"{ENV_KEY_FILE}"
        )
    sealed = SealedRun(run_dir, manifest, source).folder("model")
    names = sealed.names()
    _require_model(run_dir, names)
    weights = [n for n in names if n.endswith((".safetensors", ".onnx"))]
    with sealed.prefetching(weights):
        tokenizer = open_tokenizer(sealed)  # while the weights are being decrypted
        model = open_model(sealed)
    return model, tokenizer


def _require_model(run_dir: Path, names: list[str]) -> None:
    if "config.json" not in names:
        raise ArtifactError(f"{run_dir} has no model/ folder; the run did not finish training")
