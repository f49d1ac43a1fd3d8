"""Opening a protected run for ``trustune.load``: verify its signature, decrypt it in memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trustune.errors import ArtifactError, MissingKeyError
from trustune.security.artifact import SealedRun, is_encrypted
from trustune.security.keys import ENV_KEY_FILE, KeySource, resolve_key
from trustune.security.signing import PublicKey, read_public_key, verify_run

__all__ = ["KeyLike", "PublicKeyLike", "open_protected_run"]

KeyLike = KeySource | str | os.PathLike[str]  # a key object, or the path of a key file
PublicKeyLike = PublicKey | str | os.PathLike[str]


def open_protected_run(
    run_dir: Path, manifest: dict[str, Any], *, key: KeyLike | None = None,
    public_key: PublicKeyLike | None = None,
) -> tuple[Any, Any]:  # fmt: skip
    """The model and tokenizer of a run that is encrypted or must carry a valid signature.

    Nothing is decrypted to disk: sealed files become buffers, the weights tensors over them.
    """
    from trustune.models import (
        ResolvedModel,
        load_classifier,
        load_classifier_from_files,
        load_tokenizer,
        load_tokenizer_from_files,
    )

    if public_key is not None:
        verify_run(
            run_dir,
            public_key if isinstance(public_key, PublicKey) else read_public_key(public_key),
        )
    if not is_encrypted(manifest):
        model_dir = run_dir / "model"
        resolved = ResolvedModel(str(model_dir), str(model_dir.resolve()), is_local=True)
        return load_classifier(resolved), load_tokenizer(resolved)
    source = resolve_key(key)
    if source is None:
        raise MissingKeyError(
            f"{run_dir} is encrypted; pass its key with --key-file KEY (key= in Python) or set "
            f"{ENV_KEY_FILE}"
        )
    files = SealedRun(run_dir, manifest, source).folder("model")
    names = files.names()
    if "config.json" not in names:
        raise ArtifactError(f"{run_dir} has no model/ folder; the run did not finish training")
    with files.prefetching([n for n in names if n.endswith(".safetensors")]):
        tokenizer = load_tokenizer_from_files(files)  # while the weights are being decrypted
        model = load_classifier_from_files(files)
    return model, tokenizer
