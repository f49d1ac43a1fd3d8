"""Envelope encryption: a random data key per artifact, wrapped by a key-encryption key.

The wrapped data key lives in the manifest's ``encryption`` section (a few hundred bytes), so
rotating the key-encryption key rewrites ``trustune.json`` only, never the sealed payloads.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trustune.errors import IntegrityError, SecurityError, WrongKeyError
from trustune.manifest import Manifest
from trustune.security.format import DEFAULT_CHUNK_SIZE, FORMAT_VERSION, MAX_CHUNK_SIZE
from trustune.security.keys import (
    KeySource,
    Passphrase,
    ScryptParams,
    SecretKey,
    derive_key,
)

__all__ = [
    "ALGORITHM",
    "SEALED_SUFFIX",
    "EncryptionInfo",
    "KeyWrap",
    "unwrap_data_key",
    "wrap_data_key",
]

ALGORITHM = "AES-256-GCM"
SEALED_SUFFIX = ".enc"
_WRAP_LABEL = b"trustune.key-wrap.v1"
_KINDS = {"key-file": "a key file", "passphrase": "a passphrase"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    return base64.b64decode(text, validate=True)


@dataclass(frozen=True)
class KeyWrap:
    """The data key, encrypted (AES-256-GCM) under a key-encryption key; public by design."""

    kek_kind: str  # "key-file" or "passphrase"
    kek_id: str
    nonce: bytes
    wrapped_key: bytes  # 32 bytes of ciphertext + 16 bytes of tag
    kdf: ScryptParams | None = None
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": ALGORITHM,
            "kek": self.kek_kind,
            "kek_id": self.kek_id,
            "kdf": self.kdf.to_dict() if self.kdf else None,
            "nonce": _b64(self.nonce),
            "wrapped_key": _b64(self.wrapped_key),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyWrap:
        try:
            if data["algorithm"] != ALGORITHM or data["kek"] not in _KINDS:
                raise ValueError("algorithm")
            kdf = ScryptParams.from_dict(data["kdf"]) if data.get("kdf") else None
            wrap = cls(
                kek_kind=str(data["kek"]),
                kek_id=str(data["kek_id"]),
                nonce=_unb64(data["nonce"]),
                wrapped_key=_unb64(data["wrapped_key"]),
                kdf=kdf,
                created=str(data.get("created", "")),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise IntegrityError(
                "the key wrapping in trustune.json (encryption.key_wrap) is damaged"
            ) from None
        if (wrap.kek_kind == "passphrase") != (kdf is not None):
            raise IntegrityError("encryption.key_wrap in trustune.json is inconsistent (kdf)")
        return wrap


def _unlock(source: KeySource, kdf: ScryptParams | None) -> SecretKey:
    if isinstance(source, Passphrase):
        assert kdf is not None
        return derive_key(source, kdf)
    return source


def wrap_data_key(
    data_key: SecretKey, source: KeySource, artifact_id: bytes, *, created: str = "",
    kdf: ScryptParams | None = None, random: Callable[[int], bytes] = os.urandom,
) -> KeyWrap:  # fmt: skip
    """Wrap ``data_key`` under the key of ``source`` (a passphrase gets a fresh scrypt salt)."""
    is_passphrase = isinstance(source, Passphrase)
    kdf = (kdf or ScryptParams(salt=random(16))) if is_passphrase else None
    kek = _unlock(source, kdf)
    nonce = random(12)
    wrapped = AESGCM(kek.reveal()).encrypt(nonce, data_key.reveal(), _WRAP_LABEL + artifact_id)
    kind = "passphrase" if isinstance(source, Passphrase) else "key-file"
    return KeyWrap(kind, kek.key_id, nonce, wrapped, kdf=kdf, created=created)


def unwrap_data_key(
    wrap: KeyWrap, source: KeySource, artifact_id: bytes, *, where: str
) -> SecretKey:
    """The data key of an artifact; ``where`` names the run in errors."""
    given = "passphrase" if isinstance(source, Passphrase) else "key-file"
    if given != wrap.kek_kind:
        flag = "--passphrase" if wrap.kek_kind == "passphrase" else "--key-file KEY"
        raise WrongKeyError(
            f"{where} was encrypted with {_KINDS[wrap.kek_kind]}, but {_KINDS[given]} was given; "
            f"pass {flag}"
        )
    kek = _unlock(source, wrap.kdf)
    if kek.key_id != wrap.kek_id:
        if isinstance(source, Passphrase):
            raise WrongKeyError(f"wrong passphrase for {where}; nothing was decrypted")
        raise WrongKeyError(
            f"the key does not open {where}: it was encrypted with key id {wrap.kek_id}, the key "
            f"given has id {kek.key_id}; pass the key file it was encrypted (or last rekeyed) with"
        )
    try:
        material = AESGCM(kek.reveal()).decrypt(
            wrap.nonce, wrap.wrapped_key, _WRAP_LABEL + artifact_id
        )
    except InvalidTag:
        raise IntegrityError(
            f"the wrapped data key of {where} does not authenticate: trustune.json "
            "(encryption.key_wrap or artifact_id) was changed"
        ) from None
    return SecretKey(material)


@dataclass(frozen=True)
class EncryptionInfo:
    """The manifest's ``encryption`` section: what is sealed, how, and the wrapped data key."""

    artifact_id: bytes
    key_wrap: KeyWrap
    sealed_files: tuple[str, ...] = ()  # names as in the plaintext run (model/model.safetensors)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    format_version: int = FORMAT_VERSION
    suffix: str = SEALED_SUFFIX
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "trustune.sealed",
            "format_version": self.format_version,
            "algorithm": ALGORITHM,
            "chunk_size": self.chunk_size,
            "artifact_id": self.artifact_id.hex(),
            "suffix": self.suffix,
            "sealed_files": list(self.sealed_files),
            "key_wrap": self.key_wrap.to_dict(),
            **self.extra,
        }

    @classmethod
    def from_manifest(cls, manifest: Manifest, *, where: str) -> EncryptionInfo:
        section = manifest.encryption
        if not isinstance(section, Mapping):
            raise SecurityError(f"{where} is not encrypted")
        try:
            version = int(section["format_version"])
            if version > FORMAT_VERSION:
                raise SecurityError(
                    f"{where} was encrypted with sealed-file format {version}; this trustune "
                    f"reads format {FORMAT_VERSION} (upgrade trustune)"
                )
            info = cls(
                artifact_id=bytes.fromhex(section["artifact_id"]),
                key_wrap=KeyWrap.from_dict(section["key_wrap"]),
                sealed_files=tuple(str(n) for n in section["sealed_files"]),
                chunk_size=int(section["chunk_size"]),
                format_version=version,
                suffix=str(section["suffix"]),
            )
        except (KeyError, TypeError, ValueError):
            raise IntegrityError(
                f"the encryption section of {where}/trustune.json is damaged"
            ) from None
        bad_names = [n for n in info.sealed_files if not _safe_name(n)]
        if (
            len(info.artifact_id) != 16
            or info.suffix != SEALED_SUFFIX
            or not 1 <= info.chunk_size <= MAX_CHUNK_SIZE
            or bad_names
        ):
            raise IntegrityError(f"the encryption section of {where}/trustune.json is damaged")
        return info


def _safe_name(name: str) -> bool:
    """A relative POSIX path inside the run (no absolute paths, no ``..``)."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)
