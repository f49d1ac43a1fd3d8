"""Key-encryption keys: random keys in key files or the environment, or a passphrase through scrypt.

Key bytes live only inside :class:`SecretKey` and :class:`Passphrase`, whose ``repr`` and ``str``
are ``[secret]``; error messages name the key file and the key id, never the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from trustune.artifact import atomic_write_text
from trustune.errors import MissingKeyError, SecurityError

__all__ = [
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "KEY_BYTES",
    "KeySource",
    "Passphrase",
    "ScryptParams",
    "SecretKey",
    "derive_key",
    "generate_key",
    "key_from_env",
    "looks_like_key",
    "read_key_file",
    "resolve_key",
    "write_key_file",
]

KEY_BYTES = 32  # AES-256
ENV_KEY = "TRUSTUNE_KEY"  # the text of a key file
ENV_KEY_FILE = "TRUSTUNE_KEY_FILE"  # the path of a key file
ENV_PASSPHRASE = "TRUSTUNE_PASSPHRASE"
_KEY_PREFIX = "trustune-key-v1:"
_KEY_ID_LABEL = b"trustune key id v1"
_MIN_NEW_PASSPHRASE = 8
# A run of 32+ base64 characters mixing cases (and digits): key material, not a file name.
_KEY_LIKE = re.compile(r"[A-Za-z0-9+_-]{32,}={0,2}")


class SecretKey:
    """32 random bytes that never show: ``repr`` is ``SecretKey([secret], id=...)``."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if not isinstance(material, bytes) or len(material) != KEY_BYTES:
            raise SecurityError(f"a key must be {KEY_BYTES} bytes (AES-256)")
        self._material = material

    @property
    def key_id(self) -> str:
        """A public fingerprint (HMAC of a fixed label): tells keys apart, reveals nothing."""
        return hmac.new(self._material, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def reveal(self) -> bytes:
        """The key bytes, for the AEAD calls of ``trustune.security`` only."""
        return self._material

    def to_text(self) -> str:
        """The one-line text form of a key file (and of ``TRUSTUNE_KEY``)."""
        return _KEY_PREFIX + base64.urlsafe_b64encode(self._material).decode("ascii").rstrip("=")

    @classmethod
    def from_text(cls, text: str, *, source: str = "the key") -> SecretKey:
        """Parse the text of a key file; ``source`` names it in errors (never the text)."""
        lines = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if len(lines) != 1 or not lines[0].startswith(_KEY_PREFIX):
            _bad_key(source)
        encoded = lines[0][len(_KEY_PREFIX) :]
        try:
            material = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            _bad_key(source)
        if len(material) != KEY_BYTES:
            _bad_key(source)
        return cls(material)

    def __repr__(self) -> str:
        return f"SecretKey([secret], id={self.key_id!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self) -> NoReturn:
        raise TypeError("trustune keys cannot be pickled; keep them in a key file")


def _bad_key(source: str) -> NoReturn:
    raise SecurityError(
        f"{source} is not a trustune key (expected one line '{_KEY_PREFIX}...'); "
        "create one with `trustune keygen --output KEY`"
    )


class Passphrase:
    """A passphrase that never shows; it becomes a key through scrypt with a stored salt."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text:
            raise SecurityError("the passphrase is empty; give a passphrase or use a key file")
        self._text = text

    def reveal(self) -> bytes:
        return self._text.encode("utf-8")

    def check_strength(self) -> None:
        """A new passphrase (for encrypting) must have at least 8 characters."""
        if len(self._text) < _MIN_NEW_PASSPHRASE:
            raise SecurityError(
                f"the passphrase has fewer than {_MIN_NEW_PASSPHRASE} characters; choose a longer "
                "one, or use a key file (`trustune keygen`)"
            )

    def __repr__(self) -> str:
        return "Passphrase([secret])"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("passphrases cannot be pickled")


KeySource = SecretKey | Passphrase


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost and salt; stored (public) in the manifest so the same key can be derived."""

    salt: bytes
    n: int = 2**17  # 128 MiB of memory with r=8: OWASP's recommendation for scrypt
    r: int = 8
    p: int = 1

    # Upper bounds protect a reader from a manifest that asks for absurd memory or time:
    # memory is 128 * n * r bytes, work grows with n * r * p (the default is 2**20).
    _MAX_MEMORY = 1 << 30
    _MAX_WORK = 2**24
    _MAX_P = 16

    def to_dict(self) -> dict[str, Any]:
        salt = base64.b64encode(self.salt).decode("ascii")
        return {"name": "scrypt", "salt": salt, "n": self.n, "r": self.r, "p": self.p}

    @classmethod
    def fresh(cls, *, n: int = 2**17, r: int = 8, p: int = 1) -> ScryptParams:
        return cls(salt=os.urandom(16), n=n, r=r, p=p)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScryptParams:
        try:
            if data["name"] != "scrypt":
                raise ValueError(data["name"])
            params = cls(
                salt=base64.b64decode(data["salt"], validate=True),
                n=int(data["n"]),
                r=int(data["r"]),
                p=int(data["p"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise SecurityError(
                "the key-derivation parameters in trustune.json are damaged (encryption.key_wrap.kdf)"
            ) from None
        params.check()
        return params

    def check(self) -> None:
        n_ok = self.n >= 2 and self.n & (self.n - 1) == 0
        in_range = n_ok and self.r >= 1 and 1 <= self.p <= self._MAX_P
        if (
            not in_range
            or 128 * self.n * self.r > self._MAX_MEMORY
            or (self.n * self.r * self.p > self._MAX_WORK)
        ):
            raise SecurityError(
                f"scrypt parameters n={self.n}, r={self.r}, p={self.p} are out of range: n a "
                f"power of two, memory 128*n*r up to 1 GiB, n*r*p up to 2**24, p up to "
                f"{self._MAX_P}"
            )
        if len(self.salt) < 16:
            raise SecurityError("the scrypt salt must have at least 16 bytes")


def derive_key(passphrase: Passphrase, params: ScryptParams) -> SecretKey:
    """The key-encryption key of a passphrase: scrypt (memory-hard) with the given salt and cost."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    params.check()
    kdf = Scrypt(salt=params.salt, length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
    return SecretKey(kdf.derive(passphrase.reveal()))


def generate_key(random: Callable[[int], bytes] = os.urandom) -> SecretKey:
    """A fresh random key (``random`` is replaceable for reproducible tests only)."""
    return SecretKey(random(KEY_BYTES))


def write_key_file(path: str | Path, key: SecretKey, *, overwrite: bool = False) -> Path:
    """Write a key file readable by its owner only (mode 0600); refuses to overwrite a key."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise SecurityError(
            f"{target} already exists; a key file is never overwritten (choose another name)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# trustune key-encryption key (AES-256). Anyone with this file can decrypt the runs\n"
        "# encrypted with it; losing it makes them unreadable. Keep it out of version control.\n"
        f"{key.to_text()}\n"
    )
    atomic_write_text(target, text)  # the temporary file is created with mode 0600 (mkstemp)
    return target


def looks_like_key(value: str) -> bool:
    """Whether a value given as a path is rather key material (never echo it then)."""
    if _KEY_PREFIX in value:
        return True
    for part in re.split(r"[/\\\s]", value):
        if not _KEY_LIKE.fullmatch(part):
            continue
        upper, lower = any(c.isupper() for c in part), any(c.islower() for c in part)
        if upper and lower and (len(part) >= 40 or any(c.isdigit() for c in part)):
            return True
    return False


def read_key_file(path: str | os.PathLike[str], *, what: str = "the key-file path") -> SecretKey:
    """The key in a key file written by ``trustune keygen``; ``what`` names the path's origin."""
    text_path = os.fspath(path)
    if looks_like_key(text_path) and not os.path.lexists(text_path):
        raise MissingKeyError(
            f"{what} looks like a key, not a path; put the key in a file (mode 0600) and pass "
            "its path"
        )
    source = Path(path)
    try:
        text = source.read_text(encoding="ascii")
    except FileNotFoundError:
        raise MissingKeyError(
            f"key file {source} does not exist; pass the key file the run was encrypted with, "
            "or create a new key with `trustune keygen --output KEY`"
        ) from None
    except IsADirectoryError:
        raise SecurityError(f"key file {source} is a folder; pass the key file itself") from None
    except (OSError, UnicodeDecodeError):
        _bad_key(f"key file {source}")
    return SecretKey.from_text(text, source=f"key file {source}")


def key_from_env(environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The key named by ``TRUSTUNE_KEY_FILE``, ``TRUSTUNE_KEY`` or ``TRUSTUNE_PASSPHRASE``."""
    env = os.environ if environ is None else environ
    if env.get(ENV_KEY_FILE):
        return read_key_file(env[ENV_KEY_FILE], what=f"${ENV_KEY_FILE}")
    if env.get(ENV_KEY):
        return SecretKey.from_text(env[ENV_KEY], source=f"${ENV_KEY}")
    if env.get(ENV_PASSPHRASE):
        return Passphrase(env[ENV_PASSPHRASE])
    return None


def resolve_key(key: KeySource | str | os.PathLike[str] | None) -> KeySource | None:
    """A key as given to the API: a key object, a key-file path, or None for the environment."""
    if key is None:
        return key_from_env()
    if isinstance(key, SecretKey | Passphrase):
        return key
    if isinstance(key, str | os.PathLike):
        return read_key_file(key, what="the key argument")
    raise SecurityError(
        f"key: expected a key-file path, a SecretKey or a Passphrase, not {type(key).__name__}"
    )
