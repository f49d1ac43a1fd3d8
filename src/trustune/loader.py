"""``trustune.load``: a run folder in, the object of its task out (one registry for all tasks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

# Importing the loaded types registers them (trustune.loaded.LOADED).
import trustune.classifier
import trustune.generator
import trustune.regressor  # noqa: F401
from trustune.artifact import read_metrics, recover_run
from trustune.errors import ArtifactError
from trustune.loaded import LOADED, LoadedRun
from trustune.manifest import read_manifest
from trustune.tasks import task_of_manifest

if TYPE_CHECKING:
    from trustune.security.loading import KeyLike, PublicKeyLike

__all__ = ["load", "loaded_type", "run_metrics"]


def loaded_type(task: str) -> type[LoadedRun]:
    """The loaded class of a task."""
    if task not in LOADED:
        raise ArtifactError(f"no loaded type for task {task!r}; known: {sorted(LOADED)}")
    return LOADED[task]


def load(
    run: str | Path, *, key: KeyLike | None = None, public_key: PublicKeyLike | None = None
) -> LoadedRun:
    """Load a run folder written by ``trustune train`` (safetensors only, no remote code).

    Returns the object of the run's task: a :class:`~trustune.TextClassifier`, a
    :class:`~trustune.TextRegressor` or a :class:`~trustune.TextGenerator`. An encrypted run is decrypted in memory with ``key`` (a
    key-file path, a ``SecretKey`` or a ``Passphrase``; default: ``TRUSTUNE_KEY_FILE``,
    ``TRUSTUNE_KEY`` or ``TRUSTUNE_PASSPHRASE``). With ``public_key`` (a path or ``PublicKey``)
    the run must carry a valid signature. What an interrupted encrypt or decrypt left behind
    is repaired first (a logged warning).
    """
    run_dir = Path(run)
    recover_run(run_dir)
    manifest = read_manifest(run_dir)
    cls = loaded_type(task_of_manifest(manifest, where=str(run_dir)).name)
    if public_key is not None or manifest.encrypted:
        from trustune.security.loading import open_protected_run

        model, tokenizer = open_protected_run(
            run_dir, manifest, key=key, public_key=public_key, causal=cls.causal
        )
        return cls(run_dir, model=model, tokenizer=tokenizer, manifest=manifest)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise ArtifactError(f"{run_dir} has no model/ folder; the run did not finish training")
    compression = manifest.compression
    model = cls.open_model(
        model_dir,
        fmt=compression.format if compression else "transformers",
        transform=compression.load_transform if compression else None,
    )
    tokenizer = cls.open_tokenizer(model_dir)
    return cls(run_dir, model=model, tokenizer=tokenizer, manifest=manifest)


def run_metrics(run: str | Path) -> dict[str, Any]:
    """The metrics.json of a run."""
    return read_metrics(Path(run))
