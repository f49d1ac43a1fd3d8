"""Provenance: Ed25519 signatures over the manifest, and the SHA-256 of every file of a run.

``trustune.sig`` holds the signature of the canonical manifest (sorted keys, compact JSON,
without ``encryption.key_wrap`` so that rekeying keeps a signature valid: a replaced wrapping
can only make decryption fail). The manifest's ``files`` map lists every file of the run but
``trustune.json`` and ``trustune.sig``; verification fails on a changed, missing or extra file.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from trustune.artifact import (
    MANIFEST,
    atomic_write_json,
    atomic_write_text,
    read_manifest,
    utc_now,
)
from trustune.data.dataset import file_sha256
from trustune.errors import IntegrityError, MissingKeyError, SecurityError, SignatureError
from trustune.security.artifact import SIGNATURE_FILE, list_run_files

__all__ = [
    "PublicKey",
    "SigningKey",
    "Verification",
    "canonical_manifest",
    "generate_signing_key",
    "read_public_key",
    "read_signing_key",
    "sign_run",
    "verify_run",
    "write_signing_key",
]

_DOMAIN = b"trustune.manifest.v1\n"
_UNSIGNED = (MANIFEST, SIGNATURE_FILE)


class PublicKey:
    """An Ed25519 public key (safe to share) with a short id for messages."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @property
    def key_id(self) -> str:
        raw = self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return f"PublicKey(id={self.key_id!r})"


class SigningKey:
    """An Ed25519 private key that never shows: ``repr`` is ``SigningKey([secret], id=...)``."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def public_key(self) -> PublicKey:
        return PublicKey(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey([secret], id={self.public_key().key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("signing keys cannot be pickled; keep them in a key file")


def generate_signing_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate())


def write_signing_key(
    path: str | Path, key: SigningKey, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write the private key (PEM, mode 0600) to ``path`` and the public key to ``path.pub``."""
    private = Path(path)
    public = private.with_name(private.name + ".pub")
    existing = [p for p in (private, public) if p.exists()]
    if existing and not overwrite:
        raise SecurityError(
            f"{existing[0]} already exists; a key file is never overwritten (choose another name)"
        )
    private.parent.mkdir(parents=True, exist_ok=True)
    pem = key._key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write_text(private, pem.decode("ascii"))  # created with mode 0600 (mkstemp)
    atomic_write_text(public, key.public_key().to_pem().decode("ascii"))
    public.chmod(0o644)  # the public half is for sharing
    return private, public


def _read_pem(path: Path, what: str, hint: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MissingKeyError(f"{what} {path} does not exist; {hint}") from None
    except OSError as e:
        raise SecurityError(f"{what} {path} cannot be read: {e.strerror}") from None


def read_signing_key(path: str | os.PathLike[str]) -> SigningKey:
    """The Ed25519 private key in a PEM file written by ``trustune signing-keygen``."""
    source = Path(path)
    pem = _read_pem(source, "signing key", "create one with `trustune signing-keygen --output S`")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise SecurityError(
            f"{source} is not an unencrypted Ed25519 private key in PEM form; create one with "
            "`trustune signing-keygen --output S`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SecurityError(f"{source} is not an Ed25519 key; trustune signs with Ed25519")
    return SigningKey(key)


def read_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """The Ed25519 public key in a PEM file (``S.pub`` of ``trustune signing-keygen``)."""
    source = Path(path)
    pem = _read_pem(source, "public key", "pass the .pub file written by `trustune signing-keygen`")
    if b"PRIVATE KEY" in pem:
        raise SecurityError(
            f"{source} is a private key; verify with the public key ({source.name}.pub)"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise SecurityError(f"{source} is not a public key in PEM form") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SecurityError(f"{source} is not an Ed25519 public key")
    return PublicKey(key)


def canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """The signed bytes: a domain label, then sorted compact JSON without the key wrapping."""
    signed = copy.deepcopy(manifest)
    encryption = signed.get("encryption")
    if isinstance(encryption, dict):
        encryption.pop("key_wrap", None)
    text = json.dumps(
        signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return _DOMAIN + text.encode("utf-8")


def _current_hashes(run_dir: Path) -> dict[str, str]:
    return {n: file_sha256(run_dir / n) for n in list_run_files(run_dir) if n not in _UNSIGNED}


def _compare(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    changed = sorted(n for n in recorded.keys() & current.keys() if recorded[n] != current[n])
    missing = sorted(recorded.keys() - current.keys())
    extra = sorted(current.keys() - recorded.keys())
    problems = []
    for label, names in (("changed", changed), ("missing", missing), ("extra", extra)):
        if names:
            more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
            problems.append(f"{label}: {', '.join(names[:5])}{more}")
    return problems


def sign_run(run: str | Path, signing_key: SigningKey) -> Path:
    """Record the hash of every file in the manifest and sign it; returns ``trustune.sig``.

    Files the manifest already lists must still match it: a file changed since the run was
    written is refused rather than signed.
    """
    run_dir = Path(run)
    manifest = read_manifest(run_dir)
    current = _current_hashes(run_dir)
    recorded = manifest.get("files") or {}
    stale = _compare(recorded, {n: h for n, h in current.items() if n in recorded})
    if stale:
        raise IntegrityError(
            f"{run_dir} no longer matches its manifest ({'; '.join(stale)}); it is not signed. "
            "Restore the files, or rebuild the run"
        )
    manifest["files"] = current
    atomic_write_json(run_dir / MANIFEST, manifest)
    public = signing_key.public_key()
    record = {
        "format": "trustune.signature",
        "format_version": 1,
        "algorithm": "Ed25519",
        "key_id": public.key_id,
        "signed": utc_now(),
        "signature": base64.b64encode(signing_key.sign(canonical_manifest(manifest))).decode(),
    }
    atomic_write_json(run_dir / SIGNATURE_FILE, record)
    return run_dir / SIGNATURE_FILE


@dataclass(frozen=True)
class Verification:
    """A run whose signature and file hashes were checked."""

    run_dir: Path
    key_id: str
    files: int


def _read_signature(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SIGNATURE_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SignatureError(
            f"{run_dir} is not signed (no {SIGNATURE_FILE}); sign it with "
            f"`trustune sign {run_dir} --signing-key S`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise SignatureError(f"{path} is damaged (not JSON)") from None
    if not isinstance(record, dict) or record.get("algorithm") != "Ed25519":
        raise SignatureError(f"{path} is not an Ed25519 trustune signature")
    return record


def verify_run(
    run: str | Path, public_key: PublicKey, *, manifest: dict[str, Any] | None = None
) -> Verification:
    """Check the signature of the manifest, then every file against it; raises on any mismatch.

    ``manifest`` is the manifest already read by the caller (default: read it): the one that is
    verified is then the one the caller goes on to use.
    """
    run_dir = Path(run)
    manifest = read_manifest(run_dir) if manifest is None else manifest
    record = _read_signature(run_dir)
    if record.get("key_id") != public_key.key_id:
        raise SignatureError(
            f"{run_dir} was signed by key id {record.get('key_id')}, not by the public key given "
            f"(id {public_key.key_id}); pass the public key of the signer"
        )
    try:
        signature = base64.b64decode(record["signature"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise SignatureError(f"{run_dir / SIGNATURE_FILE} is damaged (no signature)") from None
    if not public_key.verify(signature, canonical_manifest(manifest)):
        raise SignatureError(
            f"the signature of {run_dir} does not match its manifest: trustune.json was changed "
            "after signing (or trustune.sig was)"
        )
    recorded = manifest.get("files") or {}
    problems = _compare(recorded, _current_hashes(run_dir))
    if problems:
        raise IntegrityError(
            f"{run_dir} fails verification: {'; '.join(problems)}. The signed manifest is "
            "intact, the files are not: restore them from a good copy"
        )
    return Verification(run_dir=run_dir, key_id=public_key.key_id, files=len(recorded))
