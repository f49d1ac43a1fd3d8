"""Provenance: Ed25519 signatures over the manifest, and the SHA-256 of every file of a run.

``trustune.sig`` (format 2) holds the signature of a signed version number, the signing time
and the canonical manifest (sorted keys, compact JSON, without ``encryption.key_wrap`` so that
rekeying keeps a signature valid: a replaced wrapping can only make decryption fail). A reader
can require a minimum version or time, so an older signed copy of a run (a rollback) is refused.
Format-1 signatures (the manifest only) still verify, with a notice that they carry neither.
The manifest's ``files`` map lists every file of the run but ``trustune.json`` and
``trustune.sig``; verification fails on a changed, missing or extra file.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
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
    file_sha256,
    recover_run,
    utc_now,
)
from trustune.errors import IntegrityError, MissingKeyError, SecurityError, SignatureError
from trustune.manifest import Manifest, read_manifest, write_manifest
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
    "signature_record",
    "signed_bytes",
    "verify_run",
    "write_signing_key",
]

_DOMAIN = b"trustune.manifest.v1\n"
_DOMAIN_V2 = b"trustune.signature.v2\n"
SIGNATURE_FORMAT = 2
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


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The signed bytes: a domain label, then sorted compact JSON without the key wrapping.

    ``manifest`` is the JSON form (``Manifest.to_dict()``): what is signed is what the file holds.
    """
    signed = copy.deepcopy(dict(manifest))
    encryption = signed.get("encryption")
    if isinstance(encryption, dict):
        encryption.pop("key_wrap", None)
    text = json.dumps(
        signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return _DOMAIN + text.encode("utf-8")


def signed_bytes(manifest: Mapping[str, Any], *, version: int, signed: str) -> bytes:
    """What a format-2 signature covers: its version and time, then the canonical manifest."""
    head = json.dumps({"signed": signed, "version": version}, sort_keys=True, separators=(",", ":"))
    return _DOMAIN_V2 + head.encode("utf-8") + b"\n" + canonical_manifest(manifest)


def signature_record(
    manifest: Mapping[str, Any], signing_key: SigningKey, *, version: int, signed: str
) -> dict[str, Any]:
    """The ``trustune.sig`` record (format 2) of a manifest signed as ``version`` at ``signed``."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SecurityError(f"a signature version is an integer of at least 1, not {version!r}")
    signature = signing_key.sign(signed_bytes(manifest, version=version, signed=signed))
    return {
        "format": "trustune.signature",
        "format_version": SIGNATURE_FORMAT,
        "algorithm": "Ed25519",
        "key_id": signing_key.public_key().key_id,
        "version": version,
        "signed": signed,
        "signature": base64.b64encode(signature).decode(),
    }


def _previous_version(run_dir: Path) -> int | None:
    """The version of the signature the run carries now, if it has a format-2 one."""
    try:
        record = json.loads((run_dir / SIGNATURE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    version = record.get("version") if isinstance(record, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


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


def sign_run(run: str | Path, signing_key: SigningKey, *, version: int | None = None) -> Path:
    """Record the hash of every file in the manifest and sign it; returns ``trustune.sig``.

    The signature covers ``version`` (default: one more than the run's current signature, or 1)
    and the signing time. Files the manifest already lists must still match it: a file changed
    since the run was written is refused rather than signed.
    """
    run_dir = Path(run)
    recover_run(run_dir)
    manifest = read_manifest(run_dir)
    previous = _previous_version(run_dir)
    if version is None:
        version = (previous or 0) + 1
    elif previous is not None and version < previous:
        raise SecurityError(
            f"{run_dir} is signed as version {previous}; a new signature cannot go back to "
            f"version {version} (pass --version {previous} or higher)"
        )
    current = _current_hashes(run_dir)
    recorded = dict(manifest.files)
    stale = _compare(recorded, {n: h for n, h in current.items() if n in recorded})
    if stale:
        raise IntegrityError(
            f"{run_dir} no longer matches its manifest ({'; '.join(stale)}); it is not signed. "
            "Restore the files, or rebuild the run"
        )
    manifest = dataclasses.replace(manifest, files=current)
    record = signature_record(manifest.to_dict(), signing_key, version=version, signed=utc_now())
    write_manifest(run_dir, manifest)
    atomic_write_json(run_dir / SIGNATURE_FILE, record)
    return run_dir / SIGNATURE_FILE


@dataclass(frozen=True)
class Verification:
    """A run whose signature and file hashes were checked."""

    run_dir: Path
    key_id: str
    files: int
    version: int | None = None  # the signed version (None: a format-1 signature has none)
    signed: dt.datetime | None = None  # the signed time, UTC
    notice: str | None = None  # what the caller should tell the user (an old signature format)


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


def _signed_time(text: Any, where: Path) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(text))
    except ValueError:
        raise SignatureError(f"{where} is damaged (signed time {text!r})") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _check_minimum(
    run_dir: Path, version: int | None, signed: dt.datetime | None, *,
    min_version: int | None, signed_after: dt.datetime | None,
) -> None:  # fmt: skip
    """Refuse a signature older than the caller requires (a rolled-back copy of the run)."""
    if (min_version is not None or signed_after is not None) and version is None:
        raise SignatureError(
            f"{run_dir} carries a format-1 signature, which signs no version or time, so "
            "--min-version / --signed-after cannot be checked; sign the run again"
        )
    if min_version is not None and version is not None and version < min_version:
        raise SignatureError(
            f"{run_dir} is signed as version {version}, older than the version {min_version} "
            "required (--min-version); it may be an old copy put back. Use the current run"
        )
    if signed_after is not None and signed is not None:
        after = signed_after if signed_after.tzinfo else signed_after.replace(tzinfo=dt.UTC)
        if signed < after:
            raise SignatureError(
                f"{run_dir} was signed at {signed.isoformat()}, before the "
                f"{after.isoformat()} required (--signed-after); it may be an old copy put "
                "back. Use the current run"
            )


def verify_run(
    run: str | Path, public_key: PublicKey, *, manifest: Manifest | None = None,
    min_version: int | None = None, signed_after: dt.datetime | None = None,
) -> Verification:  # fmt: skip
    """Check the signature of the manifest, then every file against it; raises on any mismatch.

    ``manifest`` is the manifest already read by the caller (default: read it): the one that is
    verified is then the one the caller goes on to use. ``min_version`` / ``signed_after``
    refuse a signature of a lower version or an earlier time (naive times are UTC).
    """
    run_dir = Path(run)
    if manifest is None:
        recover_run(run_dir)
        manifest = read_manifest(run_dir)
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
    version: int | None = None
    signed: dt.datetime | None = None
    notice = None
    record_format = record.get("format_version", 1)
    signed_form = manifest.to_dict()
    if record_format == 1:
        payload = canonical_manifest(signed_form)
        notice = (
            f"{run_dir} carries a format-1 signature: its signing time and version are not "
            "signed; sign the run again to add them"
        )
    elif record_format == SIGNATURE_FORMAT:
        version = record.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise SignatureError(f"{run_dir / SIGNATURE_FILE} is damaged (version {version!r})")
        signed = _signed_time(record.get("signed"), run_dir / SIGNATURE_FILE)
        payload = signed_bytes(signed_form, version=version, signed=str(record["signed"]))
    else:
        raise SignatureError(
            f"{run_dir / SIGNATURE_FILE} has signature format {record_format!r}, newer than this "
            "trustune reads; upgrade trustune"
        )
    if not public_key.verify(signature, payload):
        raise SignatureError(
            f"the signature of {run_dir} does not match its manifest: trustune.json was changed "
            "after signing (or trustune.sig was)"
        )
    _check_minimum(run_dir, version, signed, min_version=min_version, signed_after=signed_after)
    recorded = dict(manifest.files)
    problems = _compare(recorded, _current_hashes(run_dir))
    if problems:
        raise IntegrityError(
            f"{run_dir} fails verification: {'; '.join(problems)}. The signed manifest is "
            "intact, the files are not: restore them from a good copy"
        )
    return Verification(
        run_dir=run_dir, key_id=public_key.key_id, files=len(recorded), version=version,
        signed=signed, notice=notice,
    )  # fmt: skip
