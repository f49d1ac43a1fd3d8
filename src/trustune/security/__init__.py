"""Protecting a run: envelope encryption at rest, signatures, and the keys they need.

Everything that touches key material goes through this package.

- :mod:`~trustune.security.keys`: key-encryption keys (key file, environment, passphrase + scrypt)
- :mod:`~trustune.security.format`: the versioned, chunked AES-256-GCM sealed-file format
- :mod:`~trustune.security.envelope`: data keys wrapped by key-encryption keys, the manifest section
- :mod:`~trustune.security.artifact`: encrypt, decrypt and rekey a run; open one in memory
- :mod:`~trustune.security.signing`: Ed25519 signatures over the manifest, file hashes
"""

from __future__ import annotations

from trustune.security.artifact import (
    SIGNATURE_FILE,
    SealedRun,
    decrypt_run,
    encrypt_run,
    is_encrypted,
    is_payload,
    rekey_run,
)
from trustune.security.keys import (
    ENV_KEY,
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    KeySource,
    Passphrase,
    ScryptParams,
    SecretKey,
    generate_key,
    key_from_env,
    read_key_file,
    resolve_key,
    write_key_file,
)
from trustune.security.signing import (
    PublicKey,
    SigningKey,
    Verification,
    canonical_manifest,
    generate_signing_key,
    read_public_key,
    read_signing_key,
    sign_run,
    verify_run,
    write_signing_key,
)

__all__ = [
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "SIGNATURE_FILE",
    "KeySource",
    "Passphrase",
    "PublicKey",
    "ScryptParams",
    "SealedRun",
    "SecretKey",
    "SigningKey",
    "Verification",
    "canonical_manifest",
    "decrypt_run",
    "encrypt_run",
    "generate_key",
    "generate_signing_key",
    "is_encrypted",
    "is_payload",
    "key_from_env",
    "read_key_file",
    "read_public_key",
    "read_signing_key",
    "rekey_run",
    "resolve_key",
    "sign_run",
    "verify_run",
    "write_key_file",
    "write_signing_key",
]
