"""The run artifact on disk: atomic writes, the manifest, file hashes, environment facts."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustune.data.dataset import file_sha256
from trustune.errors import ArtifactError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "METRICS",
    "atomic_dir",
    "atomic_write_json",
    "atomic_write_text",
    "environment",
    "hash_files",
    "read_manifest",
    "read_metrics",
    "utc_now",
]

FORMAT_VERSION = 1
MANIFEST = "trustune.json"
METRICS = "metrics.json"
_PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "tokenizers",
    "scikit-learn",
    "numpy",
)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers see the old content or the new, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target`` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def hash_files(run_dir: Path, *, folders: tuple[str, ...] = ("model",)) -> dict[str, str]:
    """SHA-256 of every file under the given folders of a run, keyed by relative path."""
    hashes: dict[str, str] = {}
    for folder in folders:
        root = run_dir / folder
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            hashes[path.relative_to(run_dir).as_posix()] = file_sha256(path)
    return hashes


def environment() -> dict[str, Any]:
    """Python, platform and the versions of the packages that shape the result."""
    packages = {}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(
            f"{path.parent} is not a trustune run (no {path.name}); train one with `trustune train`"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} cannot be read as {what}: {e}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} is not a {what}")
    return data


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run; a clear error when the folder is no run."""
    if not run_dir.is_dir():
        raise ArtifactError(f"no run folder {run_dir}")
    manifest = _read_json(run_dir / MANIFEST, "a trustune manifest")
    if manifest.get("format") != "trustune.run":
        raise ArtifactError(f"{run_dir / MANIFEST} is not a trustune manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArtifactError(
            f"{run_dir} was written by a newer trustune (format {version}); upgrade trustune"
        )
    return manifest


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS
    if not path.exists():
        return {"validation": None, "evaluations": {}}
    return _read_json(path, "metrics")
