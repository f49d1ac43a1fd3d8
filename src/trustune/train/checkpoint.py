"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``checkpoints/step-000120/`` written under a temporary name and
renamed when complete, so a crash or a full disk never leaves a half checkpoint behind
and the previous one stays intact. Loading checks the names: a tensor missing from the file
(other than a tied alias) or one the model does not have is an error, never skipped.

Checkpoints serve only to continue an interrupted run: once the run is written, its
``checkpoints/`` folder goes (:func:`remove_checkpoints`; ``trustune prune`` for older runs,
:func:`prune_run`). A finished run cannot be continued (``--resume`` of it would only write the
same model again), and ``checkpoints/best`` duplicates ``model/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from trustune.artifact import (
    MANIFEST,
    atomic_file,
    file_sha256,
    io_error,
    recover_run,
)
from trustune.errors import ArtifactError, CheckpointError, IntegrityError, SecurityError
from trustune.manifest import read_manifest, write_manifest
from trustune.models.weights import load_weights

if TYPE_CHECKING:
    from trustune.security.signing import SigningKey

__all__ = [
    "CHECKPOINTS",
    "Pruned",
    "TrainingState",
    "folder_size",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_run",
    "read_checkpoint_info",
    "remove_checkpoints",
    "save_checkpoint",
    "save_weights",
    "save_weights_atomic",
]

CHECKPOINTS = "checkpoints"  # the folder of a run that holds them
_STEP_DIR = re.compile(r"^step-(\d+)$")
# checkpoints/ renamed to this before it is deleted, so no half-deleted checkpoint is ever
# taken for one to resume from (a name recover_run leaves alone: it must not be put back)
_REMOVING = re.compile(rf"^\.{CHECKPOINTS}\.removing-\d+$")


@dataclass
class TrainingState:
    """Where training stands, enough to continue exactly from here."""

    epoch: int = 0  # current epoch (0-based)
    batches_done: int = 0  # micro-batches of the current epoch already consumed
    step: int = 0  # optimizer steps taken
    samples_seen: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float = 0.0  # the whole loop: steps, validation, checkpoints
    overhead_time_s: float = 0.0  # validation and checkpoint writing within it
    extra: dict[str, Any] = field(default_factory=dict)  # sections later stages add (privacy ...)


def _state_to_tensors(prefix: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state dict into flat tensors and a JSON skeleton that names them."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, torch.Tensor):
            name = f"{prefix}{key}"
            tensors[name] = value.detach().cpu().contiguous()
            return {"__tensor__": name}
        if isinstance(value, dict):
            return {"__dict__": [[k, walk(v, f"{key}.{k}")] for k, v in value.items()]}
        if isinstance(value, list | tuple):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(value)]
        return value

    return tensors, walk(state, "")


def _state_from_tensors(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {k: _state_from_tensors(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [_state_from_tensors(v, tensors) for v in skeleton]
    return skeleton


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    np_state: Any = np.random.get_state()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
    }
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    py_version, py_internal, py_gauss = random.getstate()
    meta = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    return tensors, meta


def _restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state(
        (name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached)
    )


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Model weights as safetensors (shared tensors cloned so the file is self-contained)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})


def save_weights_atomic(model: torch.nn.Module, path: Path) -> None:
    """:func:`save_weights` under a temporary name renamed into place; any failure leaves none."""
    try:
        with atomic_file(path) as tmp:
            save_weights(model, tmp)
    except BaseException as e:
        cause = io_error(e)
        if cause is None:
            raise
        raise ArtifactError(
            f"could not write {path}: {cause.strerror or cause}; any previous version of it is intact"
        ) from None


def save_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: TrainingState,
    run_info: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``folder/step-N`` atomically, then prune to the ``keep`` most recent."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{state.step:06d}"
    tmp = folder / f".tmp-step-{state.step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_weights(model, tmp / "model.safetensors")
        opt_tensors, opt_skeleton = _state_to_tensors("optimizer", optimizer.state_dict())
        rng_tensors, rng_meta = _rng_state()
        save_file({**opt_tensors, **rng_tensors}, str(tmp / "optimizer.safetensors"))
        payload = {
            "state": state.__dict__,
            "optimizer": opt_skeleton,
            "scheduler": scheduler.state_dict(),
            "rng": rng_meta,
            "run": run_info,
        }
        (tmp / "state.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as e:  # Ctrl-C or a full disk: no half checkpoint stays
        shutil.rmtree(tmp, ignore_errors=True)
        cause = io_error(e)
        if cause is None:
            raise
        previous = latest_checkpoint(folder)
        kept = (
            f"the previous checkpoint {previous.name} is intact"
            if previous
            else "no checkpoint was kept"
        )
        raise ArtifactError(
            f"could not write checkpoint {final}: {cause.strerror or cause}; {kept}"
        ) from None
    for old in _step_dirs(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(folder: Path) -> Path | None:
    """The most recent complete checkpoint, or None."""
    dirs = [p for p in _step_dirs(folder) if (p / "state.json").is_file()]
    return dirs[-1] if dirs else None


def load_checkpoint(
    path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[TrainingState, dict[str, Any]]:
    """Restore model, optimizer, scheduler and RNG; returns the state and the run info."""
    try:
        payload = json.loads((path / "state.json").read_text(encoding="utf-8"))
        weights = load_file(str(path / "model.safetensors"))
        tensors = load_file(str(path / "optimizer.safetensors"))
    except (OSError, json.JSONDecodeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from None
    load_weights(
        model, weights, where=f"checkpoint {path}", hint="; start a new run without --resume"
    )
    optimizer.load_state_dict(_state_from_tensors(payload["optimizer"], tensors))
    scheduler.load_state_dict(payload["scheduler"])
    _restore_rng(tensors, payload["rng"])
    return TrainingState(**payload["state"]), payload["run"]


def read_checkpoint_info(path: Path) -> dict[str, Any]:
    """The run info of a checkpoint (config and data fingerprints) without loading tensors."""
    try:
        info: dict[str, Any] = json.loads((path / "state.json").read_text(encoding="utf-8"))["run"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from None
    return info


def folder_size(folder: Path) -> int:
    """Bytes in the files under ``folder`` (links not followed); 0 when there is none."""
    if not folder.is_dir():
        return 0
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _checkpoint_folders(run_dir: Path) -> list[Path]:
    """``checkpoints/`` and any half-removed one an interrupted removal left behind."""
    found = [run_dir / CHECKPOINTS] if (run_dir / CHECKPOINTS).is_dir() else []
    if run_dir.is_dir():
        found += sorted(p for p in run_dir.iterdir() if _REMOVING.match(p.name) and p.is_dir())
    return found


def remove_checkpoints(run_dir: Path) -> int:
    """Delete the checkpoints of a run that has just been written; returns the bytes freed.

    Called after the manifest is written, so the run is complete whatever happens here: a
    failure to delete leaves the checkpoints for ``trustune prune`` and is not an error.
    """
    freed = 0
    for folder in _checkpoint_folders(run_dir):
        size = folder_size(folder)
        doomed = folder
        if folder.name == CHECKPOINTS:
            doomed = run_dir / f".{CHECKPOINTS}.removing-{os.getpid()}"
            try:
                os.replace(folder, doomed)
            except OSError:
                continue
        shutil.rmtree(doomed, ignore_errors=True)
        freed += size - folder_size(doomed)
    return freed


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune_run` did."""

    freed_bytes: int
    run_bytes: int  # the run's size afterwards
    signed_version: int | None = None  # the new signature's version, when the run was signed again


def prune_run(
    run: str | Path, *, force: bool = False, signing_key: SigningKey | None = None
) -> Pruned:
    """Delete the checkpoints of a finished run; the model and records stay as they are.

    An unfinished run (checkpoints, no manifest) is refused unless ``force``: its checkpoints
    are what ``--resume`` continues from. A signed run whose signature lists checkpoint files
    needs ``signing_key`` to be signed again (a new version) without them; an encrypted run
    lists its sealed checkpoints in the manifest and is refused.
    """
    from trustune.security.artifact import SIGNATURE_FILE, is_encrypted

    run_dir = Path(run)
    recover_run(run_dir)
    folders = _checkpoint_folders(run_dir)
    if not (run_dir / MANIFEST).is_file() and folders:
        if not force:
            raise CheckpointError(
                f"{run_dir} is an unfinished run (no {MANIFEST}): its checkpoints are what "
                f"`trustune train --output {run_dir} --resume` continues from; pass --force to "
                "delete them anyway"
            )
        freed = remove_checkpoints(run_dir)
        return Pruned(freed_bytes=freed, run_bytes=folder_size(run_dir))
    manifest = read_manifest(run_dir)
    recorded = manifest.files
    listed = {
        n
        for n in recorded
        if n.split("/", 1)[0] == CHECKPOINTS or _REMOVING.match(n.split("/", 1)[0])
    }
    if is_encrypted(manifest) and (folders or listed):
        raise SecurityError(
            f"{run_dir} is encrypted and its manifest lists the sealed checkpoints; decrypt it "
            "(`trustune decrypt`), prune it, then encrypt it again"
        )
    signed = (run_dir / SIGNATURE_FILE).is_file()
    if listed and signed:
        if signing_key is None:
            raise SecurityError(
                f"{run_dir} is signed and its signature covers checkpoints/; pass --signing-key "
                "FILE to sign the pruned run again (a new version), or leave the run as it is"
            )
        _check_unchanged(run_dir, {n: h for n, h in recorded.items() if n not in listed})
    freed = remove_checkpoints(run_dir)
    signed_version = None
    if listed:
        kept = {n: h for n, h in recorded.items() if n not in listed}
        write_manifest(run_dir, dataclasses.replace(manifest, files=kept))
        if signed and signing_key is not None:
            from trustune.security.signing import sign_run

            record = json.loads(sign_run(run_dir, signing_key).read_text(encoding="utf-8"))
            signed_version = record.get("version")
    return Pruned(freed_bytes=freed, run_bytes=folder_size(run_dir), signed_version=signed_version)


def _check_unchanged(run_dir: Path, recorded: dict[str, str]) -> None:
    """Before a signed run is pruned and signed again: its other files still match the manifest."""
    changed = sorted(
        n for n, h in recorded.items()
        if not (run_dir / n).is_file() or file_sha256(run_dir / n) != h
    )  # fmt: skip
    if changed:
        more = f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""
        raise IntegrityError(
            f"{run_dir} no longer matches its manifest (changed or missing: "
            f"{', '.join(changed[:5])}{more}); it is not pruned. Restore the files, or rebuild "
            "the run"
        )
