"""The run artifact on disk: atomic writes, file hashes, metrics, environment facts.

The manifest (``trustune.json``) is read and written by :mod:`trustune.manifest`.

A folder is replaced by building the new version in a hidden sibling whose name carries the
writer's process id (``.NAME.tmp-PID-XXXX``), then two renames: ``NAME`` to ``.NAME.old-PID``
and the new version to ``NAME``. A command killed anywhere in between leaves names that
:func:`recover_run` reads back: it finishes or rolls back the swap and removes what is left over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trustune.errors import ArtifactError

__all__ = [
    "MANIFEST",
    "METRICS",
    "atomic_dir",
    "atomic_file",
    "atomic_write_json",
    "atomic_write_text",
    "discard_staging",
    "environment",
    "file_sha256",
    "hash_files",
    "io_error",
    "read_metrics",
    "recover_dir",
    "recover_run",
    "staging_dir",
    "swap_in",
    "utc_now",
]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
log = logging.getLogger("trustune")
# staging folders this process is still writing (a leftover with our own pid is stale otherwise)
_ACTIVE: set[Path] = set()
_ACTIVE_LOCK = threading.Lock()


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds the file is flushed to
    disk and renamed onto ``path`` (readers see the old content or the new, never a half-written
    one); on any failure, Ctrl-C included, the temporary file is removed and ``path`` is intact.
    ``mode`` sets the permissions (temporary files are created 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write a text file through :func:`atomic_file`."""
    with atomic_file(path, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def io_error(error: BaseException) -> OSError | None:
    """The OSError behind a failed write: ``error`` itself, or the I/O error that safetensors
    reports as its own exception type (a full disk while saving tensors); None for others."""
    if isinstance(error, OSError):
        return error
    if type(error).__name__ == "SafetensorError":
        found = re.search(r"os error (\d+)", str(error))
        if found:
            code = int(found.group(1))
            return OSError(code, os.strerror(code))
    return None


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def staging_dir(target: Path) -> Path:
    """Create the hidden sibling in which a new version of ``target`` is built (pid in its name)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))
    with _ACTIVE_LOCK:
        _ACTIVE.add(tmp)
    return tmp


def discard_staging(tmp: Path) -> None:
    """Remove a staging folder that will not be swapped in."""
    shutil.rmtree(tmp, ignore_errors=True)
    with _ACTIVE_LOCK:
        _ACTIVE.discard(tmp)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(tmp: Path, target: Path) -> None:
    """Replace ``target`` by the complete folder ``tmp``: the old one is moved aside, then deleted.

    On an error the previous ``target`` is put back and ``tmp`` removed; if even that fails, the
    names left behind let :func:`recover_run` finish the swap later.
    """
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    moved_aside = False
    try:
        if target.exists() or target.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            moved_aside = True
        os.replace(tmp, target)
    except BaseException:
        try:
            if moved_aside:
                os.replace(old, target)
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass  # both names stay: recover_run finishes the swap
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(tmp)
    with contextlib.suppress(OSError):
        _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces ``target`` (see :func:`swap_in`)."""
    tmp = staging_dir(target)
    try:
        yield tmp
    except BaseException:
        discard_staging(tmp)
        raise
    swap_in(tmp, target)


def _writer_alive(target: Path, pid: int) -> bool:
    """Whether the process that left a staging or old folder of ``target`` may still be at work."""
    if pid == os.getpid():
        prefix = f".{target.name}.tmp-{pid}-"
        with _ACTIVE_LOCK:
            return any(p.parent == target.parent and p.name.startswith(prefix) for p in _ACTIVE)
    if os.name != "posix":
        return True  # no safe liveness probe: leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):
        return False  # no such process can exist
    except OSError:
        return True  # it exists (another user's process)
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def recover_dir(target: Path) -> list[str]:
    """Finish or roll back a replacement of ``target`` that a killed command left; returns notices.

    A ``.NAME.old-PID`` whose ``NAME`` is missing is a swap cut between its two renames: the
    complete new version (``.NAME.tmp-PID-*``) is renamed into place, or, without one, the old
    version is put back. A ``.NAME.old-PID`` next to ``NAME`` is deleted, and so is any
    ``.NAME.tmp-*`` whose writer process is gone. Each action is logged as a warning.
    """
    target = Path(target)
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)(?:-[A-Za-z0-9_]+)?$")
    olds: list[tuple[Path, int | None]] = []
    tmps: list[tuple[Path, int]] = []
    for path in entries:
        if path.name == f".{target.name}.old":  # written by trustune before pids were recorded
            olds.append((path, None))
            continue
        match = pattern.match(path.name)
        if match is None or _writer_alive(target, pid := int(match.group(2))):
            continue
        if match.group(1) == "old":
            olds.append((path, pid))
        else:
            tmps.append((path, pid))
    notices: list[str] = []
    for old, writer in olds:
        if target.exists():
            _remove(old)
            notices.append(f"removed {old.name}, the previous version of {target} that an "
                           "interrupted trustune command left behind")  # fmt: skip
            continue
        complete = sorted((t for t, p in tmps if p == writer), key=lambda t: t.stat().st_mtime)
        try:
            if complete:
                os.replace(complete[-1], target)
                tmps = [(t, p) for t, p in tmps if t != complete[-1]]
                _remove(old)
                notices.append(f"finished replacing {target}: an interrupted trustune command "
                               f"(pid {writer}) had moved the previous version aside; the new "
                               "version it had completed is now in place")  # fmt: skip
            else:
                os.replace(old, target)
                notices.append(f"restored {target} from {old.name}, where an interrupted "
                               "trustune command had moved it")  # fmt: skip
        except OSError as e:
            notices.append(f"could not repair {target} ({e.strerror or e}); see {old}")
    for tmp, pid in tmps:
        _remove(tmp)
        notices.append(f"removed {tmp.name}, an incomplete temporary folder of {target} left by "
                       f"an interrupted trustune command (pid {pid})")  # fmt: skip
    for notice in notices:
        log.warning(notice)
    return notices


def recover_run(run_dir: Path) -> list[str]:
    """:func:`recover_dir` for a run folder and for the folders inside it (``model/``, ...)."""
    run_dir = Path(run_dir)
    notices = recover_dir(run_dir)
    if run_dir.is_dir():
        child = re.compile(r"^\.(.+)\.(?:tmp|old)-\d+(?:-[A-Za-z0-9_]+)?$")
        names = {m.group(1) for p in run_dir.iterdir() if (m := child.match(p.name))}
        for name in sorted(names):
            notices += recover_dir(run_dir / name)
    return notices


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


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS
    if not path.exists():
        return {"validation": None, "evaluations": {}}
    return _read_json(path, "metrics")
