"""Encrypting, decrypting and rekeying a whole run folder, and opening an encrypted run in memory.

Every payload (any file inside a folder of the run: ``model/``, ``checkpoints/``, ...) is sealed
as ``NAME.enc``. The records at the top of the run (``trustune.json``, ``metrics.json``,
``report.html``, ``explanations.json``, ...) stay readable: they describe the model, they are not
the model. The manifest gains an ``encryption`` section. Output is
written to a temporary folder that replaces the target in one rename: a failure leaves nothing,
and what a killed command leaves is repaired by the next one (``trustune.artifact.recover_run``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from trustune.artifact import (
    MANIFEST,
    atomic_dir,
    hash_files,
    recover_dir,
    recover_run,
    utc_now,
)
from trustune.errors import ArtifactError, IntegrityError, SecurityError
from trustune.manifest import Manifest, write_manifest
from trustune.manifest import read_manifest as _read_manifest
from trustune.progress import Progress
from trustune.security.envelope import (
    SEALED_SUFFIX,
    EncryptionInfo,
    KeyWrap,
    unwrap_data_key,
    wrap_data_key,
)
from trustune.security.format import DEFAULT_CHUNK_SIZE, open_stream, plaintext_size, seal_stream
from trustune.security.keys import KeySource, Passphrase, ScryptParams, SecretKey, generate_key
from trustune.security.opener import SealedFileOpener, decrypt_all, default_workers

__all__ = [
    "SIGNATURE_FILE",
    "SealedFolder",
    "SealedRun",
    "decrypt_run",
    "encrypt_run",
    "is_encrypted",
    "is_payload",
    "list_run_files",
    "rekey_run",
]

SIGNATURE_FILE = "trustune.sig"


def is_payload(name: str) -> bool:
    """Whether a run file (relative POSIX name) is sealed: files in folders are, records are not."""
    return "/" in name


def is_encrypted(manifest: Manifest) -> bool:
    """Whether a manifest describes an encrypted run."""
    return manifest.encrypted


def list_run_files(run_dir: Path) -> Iterator[str]:
    """Relative POSIX names of every file in a run, sorted; a symbolic link is refused."""
    for path in sorted(run_dir.rglob("*")):
        if path.is_symlink():
            raise SecurityError(
                f"{path} is a symbolic link; a run folder to encrypt or sign holds plain files only"
            )
        if path.is_file():
            yield path.relative_to(run_dir).as_posix()


def _payload_names(run_dir: Path) -> list[str]:
    return [name for name in list_run_files(run_dir) if is_payload(name)]


class _HashingWriter:
    """Writes to a file and hashes what it writes, so a sealed file is read once."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.digest = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return int(self.f.write(data))


def _target(run_dir: Path, output: str | Path | None) -> Path:
    if output is None:
        return run_dir
    target = Path(output)
    recover_dir(target)  # a killed earlier run of the same command may have left it half-made
    if target.exists():
        raise ArtifactError(f"{target} already exists; choose another --output or remove it")
    return target


def _copy_records(run_dir: Path, tmp: Path) -> None:
    """Copy the readable records but the manifest (rewritten) and the signature (invalidated)."""
    for name in list_run_files(run_dir):
        if not is_payload(name) and name not in (MANIFEST, SIGNATURE_FILE):
            shutil.copy2(run_dir / name, tmp / name)


def encrypt_run(
    run: str | Path, *, key: KeySource, output: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE, kdf: ScryptParams | None = None,
    progress: Progress | None = None, random: Callable[[int], bytes] = os.urandom,
) -> Path:  # fmt: skip
    """Seal every payload of a run under a fresh data key wrapped by ``key``; returns the folder.

    Without ``output`` the run is replaced in place (plaintext files are unlinked, not shredded).
    A signature is dropped: sign the encrypted run again. ``kdf`` sets the scrypt cost of a
    passphrase; ``random`` is replaceable for reproducible tests only.
    """
    run_dir = Path(run)
    recover_run(run_dir)
    manifest = _read_manifest(run_dir)
    if is_encrypted(manifest):
        raise SecurityError(
            f"{run_dir} is already encrypted; to change its key use `trustune rekey`"
        )
    if isinstance(key, Passphrase):
        key.check_strength()
    target = _target(run_dir, output)
    names = _payload_names(run_dir)
    artifact_id = random(16)
    data_key = generate_key(random)
    wrap = wrap_data_key(data_key, key, artifact_id, created=utc_now(), kdf=kdf, random=random)
    info = EncryptionInfo(
        artifact_id=artifact_id, key_wrap=wrap, sealed_files=tuple(names), chunk_size=chunk_size
    )
    progress = progress or Progress()
    progress.start("encrypt", total=sum((run_dir / n).stat().st_size for n in names))
    try:
        with atomic_dir(target) as tmp:
            hashes: dict[str, str] = {}
            for name in names:
                sealed = name + SEALED_SUFFIX
                (tmp / sealed).parent.mkdir(parents=True, exist_ok=True)
                with open(run_dir / name, "rb") as fin, open(tmp / sealed, "xb") as fout:
                    writer = _HashingWriter(fout)
                    seal_stream(
                        fin, writer, data_key=data_key, artifact_id=artifact_id,  # type: ignore[arg-type]
                        name=name, chunk_size=chunk_size, random=random,
                    )  # fmt: skip
                    fout.flush()
                    os.fsync(fout.fileno())
                hashes[sealed] = writer.digest.hexdigest()
                progress.advance("encrypt", (run_dir / name).stat().st_size)
            _copy_records(run_dir, tmp)
            sealed_manifest = dataclasses.replace(manifest, encryption=info.to_dict(), files=hashes)
            write_manifest(tmp, sealed_manifest)
    finally:
        progress.end("encrypt")
    return target


def _open(run_dir: Path, key: KeySource) -> tuple[Manifest, EncryptionInfo, SecretKey]:
    recover_run(run_dir)
    manifest = _read_manifest(run_dir)
    if not is_encrypted(manifest):
        raise SecurityError(f"{run_dir} is not encrypted; there is nothing to decrypt or rekey")
    info = EncryptionInfo.from_manifest(manifest, where=str(run_dir))
    data_key = unwrap_data_key(info.key_wrap, key, info.artifact_id, where=str(run_dir))
    return manifest, info, data_key


def _check_complete(run_dir: Path, info: EncryptionInfo) -> None:
    expected = {name + info.suffix for name in info.sealed_files}
    present = {name for name in list_run_files(run_dir) if is_payload(name)}
    missing, extra = sorted(expected - present), sorted(present - expected)
    if missing or extra:
        parts = [f"missing {', '.join(missing[:5])}" if missing else "",
                 f"unexpected {', '.join(extra[:5])}" if extra else ""]  # fmt: skip
        raise IntegrityError(
            f"{run_dir} does not match its manifest: {'; '.join(p for p in parts if p)}. "
            "Restore the run from a good copy (an unexpected file may be removed)"
        )


def decrypt_run(
    run: str | Path, *, key: KeySource, output: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:  # fmt: skip
    """Write the plaintext run (in place without ``output``); nothing is written on any failure."""
    run_dir = Path(run)
    manifest, info, data_key = _open(run_dir, key)
    _check_complete(run_dir, info)
    target = _target(run_dir, output)
    sizes = {n: (run_dir / (n + info.suffix)).stat().st_size for n in info.sealed_files}
    progress = progress or Progress()
    progress.start("decrypt", total=sum(sizes.values()))
    try:
        with atomic_dir(target) as tmp:
            for name in info.sealed_files:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                with open(run_dir / (name + info.suffix), "rb") as fin, open(tmp / name, "xb") as f:
                    open_stream(
                        fin, f, size=sizes[name], data_key=data_key,
                        artifact_id=info.artifact_id, name=name,
                    )  # fmt: skip
                    f.flush()
                    os.fsync(f.fileno())
                progress.advance("decrypt", sizes[name])
            _copy_records(run_dir, tmp)
            write_manifest(
                tmp, dataclasses.replace(manifest, encryption=None, files=hash_files(tmp))
            )
    finally:
        progress.end("decrypt")
    return target


def rekey_run(
    run: str | Path, *, key: KeySource, new_key: KeySource, kdf: ScryptParams | None = None
) -> KeyWrap:
    """Wrap the run's data key under ``new_key``; only ``trustune.json`` is rewritten."""
    run_dir = Path(run)
    manifest, info, data_key = _open(run_dir, key)
    if isinstance(new_key, Passphrase):
        new_key.check_strength()
    wrap = wrap_data_key(data_key, new_key, info.artifact_id, created=utc_now(), kdf=kdf)
    if wrap.kek_id == info.key_wrap.kek_id:
        raise SecurityError(
            f"the new key is the key {run_dir} is already encrypted with; give a different key"
        )
    section = {**(manifest.encryption or {}), "key_wrap": wrap.to_dict()}
    write_manifest(run_dir, dataclasses.replace(manifest, encryption=section))
    return wrap


class SealedFolder:
    """The files of one folder of an encrypted run, decrypted into memory on request."""

    def __init__(self, run: SealedRun, folder: str) -> None:
        self._run = run
        self._prefix = folder.rstrip("/") + "/"
        self._pending: dict[str, SealedFileOpener] = {}
        self.source = f"{run.run_dir / folder} (encrypted)"

    def names(self) -> list[str]:
        return [n[len(self._prefix) :] for n in self._run.names() if n.startswith(self._prefix)]

    def size(self, name: str) -> int:
        """Plaintext bytes of one file, from the sealed file's size (nothing is decrypted)."""
        return self._run.size(self._prefix + name)

    def read(self, name: str) -> np.ndarray:
        pending = self._pending.pop(name, None)
        if pending is not None:
            return pending.finish()  # this thread helps with what is left
        return self._run.read(self._prefix + name)

    @contextlib.contextmanager
    def prefetching(self, names: list[str]) -> Iterator[None]:
        """Start decrypting ``names`` on background threads; :meth:`read` joins the work.

        AES-GCM releases the GIL, so on two cores the weights are decrypted while the caller
        builds the tokenizer. Files not read by the end of the block are dropped.
        """
        openers = {name: self._run.opener(self._prefix + name) for name in names}
        self._pending.update(openers)
        helpers = max(1, default_workers() - 1)  # one core stays with the caller
        with ThreadPoolExecutor(helpers, thread_name_prefix="trustune-prefetch") as pool:
            for opener in openers.values():
                for _ in range(helpers):
                    pool.submit(opener.work)
            try:
                yield
            finally:
                for name, opener in openers.items():
                    if self._pending.pop(name, None) is not None:
                        with contextlib.suppress(Exception):
                            opener.finish()  # waits for the helpers and closes the file

    def __repr__(self) -> str:
        return f"SealedFolder({self.source!r})"


class SealedRun:
    """An encrypted run opened with its key; files are decrypted into memory, never to disk."""

    def __init__(self, run_dir: Path, manifest: Manifest, key: KeySource) -> None:
        self.run_dir = run_dir
        self.info = EncryptionInfo.from_manifest(manifest, where=str(run_dir))
        self._data_key = unwrap_data_key(
            self.info.key_wrap, key, self.info.artifact_id, where=str(run_dir)
        )

    def __repr__(self) -> str:
        return f"SealedRun({str(self.run_dir)!r}, artifact_id={self.info.artifact_id.hex()!r})"

    def names(self) -> tuple[str, ...]:
        return self.info.sealed_files

    def folder(self, folder: str) -> SealedFolder:
        return SealedFolder(self, folder)

    def _sealed_path(self, name: str) -> Path:
        if name not in self.info.sealed_files:
            raise ArtifactError(f"{self.run_dir} has no sealed file {name}")
        path = self.run_dir / (name + self.info.suffix)
        if not path.is_file():
            raise IntegrityError(
                f"{path} is missing; the encrypted run is incomplete. Restore it from a good copy"
            )
        return path

    def size(self, name: str) -> int:
        """Plaintext bytes of one sealed file, from its size on disk."""
        path = self._sealed_path(name)
        return plaintext_size(path.stat().st_size, self.info.chunk_size, name=name)

    def opener(self, name: str) -> SealedFileOpener:
        """Start opening one sealed file: threads call ``work()``, one calls ``finish()``."""
        path = self._sealed_path(name)
        return SealedFileOpener(
            path, data_key=self._data_key, artifact_id=self.info.artifact_id, name=name
        )

    def read(self, name: str, workers: int | None = None) -> np.ndarray:
        """The plaintext of one sealed file (uint8 array), authenticated chunk by chunk.

        ``workers`` threads decrypt chunks (default: one per core, at most 4).
        """
        return decrypt_all(self.opener(name), workers=workers)
