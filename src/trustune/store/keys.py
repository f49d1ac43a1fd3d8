"""API keys: roles, random secrets shown once, SHA-256 hashes at rest, expiry and revocation."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, exc, insert, select, update

from trustune.errors import StoreError
from trustune.store.schema import api_keys

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_RATE_PER_S",
    "SECRET_PREFIX",
    "ApiKey",
    "ApiSecret",
    "Role",
    "authenticate_key",
    "create_key",
    "get_key",
    "hash_secret",
    "list_keys",
    "new_key_id",
    "new_secret",
    "revoke_key",
]

SECRET_PREFIX = "tt_"
KEY_ID_PREFIX = "k_"
DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 40
MAX_NAME_CHARS = 200
# Longer than any secret we make: refused before hashing (a request header can be huge).
_MAX_SECRET_CHARS = 128


class Role(StrEnum):
    """What a key may do; explanations leak more about the model than labels do."""

    PREDICT = "predict"
    EXPLAIN = "explain"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """admin allows everything; explain allows predict and explain; predict only predict."""
        return _RANK[self] >= _RANK[Role(needed)]

    @classmethod
    def parse(cls, value: Role | str) -> Role:
        """The role named ``value``; an unknown name is a :class:`StoreError` listing the roles."""
        if isinstance(value, Role):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise StoreError(
                f"unknown role {value!r}; choose one of {', '.join(r.value for r in cls)}"
            ) from None


_RANK = {Role.PREDICT: 0, Role.EXPLAIN: 1, Role.ADMIN: 2}


class ApiSecret(str):
    """A key's secret: the string itself, but ``[secret]`` in reprs so logs never show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[secret]"


@dataclass(frozen=True)
class ApiKey:
    """A stored key: everything but the secret, which is never kept."""

    id: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rate_per_s: float = DEFAULT_RATE_PER_S
    burst: int = DEFAULT_BURST

    def active(self, now: datetime) -> bool:
        """Neither revoked (whenever that was) nor expired at ``now`` (tz-aware)."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def status(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (times as ISO 8601 UTC); there is no secret to leave out."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
        }


def new_secret() -> ApiSecret:
    """``tt_`` + 32 random bytes, URL-safe base64."""
    return ApiSecret(SECRET_PREFIX + secrets.token_urlsafe(32))


def new_key_id() -> str:
    """The short public id of a key, e.g. ``k_3f9a2c1b``."""
    return KEY_ID_PREFIX + secrets.token_hex(4)


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a secret: what the database keeps."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _validated(
    name: str, expires_at: datetime | None, rate_per_s: float, burst: int, now: datetime
) -> tuple[str, datetime | None]:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise StoreError(f"a key needs a name of 1 to {MAX_NAME_CHARS} characters (--name)")
    if not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise StoreError(f"rate {rate_per_s} requests/s is not allowed; pass --rate above 0")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise StoreError(f"burst {burst} is not allowed; pass --burst of 1 or more")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        expires_at = expires_at.astimezone(UTC)
        if expires_at <= now:
            raise StoreError(
                f"expiry {expires_at.isoformat()} is in the past; pass a later --expires"
            )
    return name, expires_at


def _row_to_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id, name=row.name, role=Role(row.role), created_at=row.created_at,
        expires_at=row.expires_at, revoked_at=row.revoked_at,
        rate_per_s=float(row.rate_per_s), burst=int(row.burst),
    )  # fmt: skip


_COLUMNS = (
    api_keys.c.id, api_keys.c.name, api_keys.c.role, api_keys.c.created_at,
    api_keys.c.expires_at, api_keys.c.revoked_at, api_keys.c.rate_per_s, api_keys.c.burst,
)  # fmt: skip


def create_key(
    engine: Engine, *, name: str, role: Role | str, expires_at: datetime | None = None,
    rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST,
) -> tuple[ApiKey, ApiSecret]:  # fmt: skip
    """Store a new key and return it with its secret (the only time the secret exists)."""
    role = Role.parse(role)
    now = _now()
    name, expires_at = _validated(name, expires_at, float(rate_per_s), burst, now)
    for _ in range(5):  # a fresh random id; retried on the rare collision
        secret = new_secret()
        key = ApiKey(
            id=new_key_id(), name=name, role=role, created_at=now, expires_at=expires_at,
            revoked_at=None, rate_per_s=float(rate_per_s), burst=burst,
        )  # fmt: skip
        try:
            with engine.begin() as connection:
                row = {
                    "id": key.id, "name": key.name, "role": key.role.value,
                    "secret_sha256": hash_secret(secret), "created_at": key.created_at,
                    "expires_at": key.expires_at, "revoked_at": None,
                    "rate_per_s": key.rate_per_s, "burst": key.burst,
                }  # fmt: skip
                connection.execute(insert(api_keys).values(**row))
        except exc.IntegrityError:
            continue
        return key, secret
    raise StoreError("could not find a free key id after 5 tries; run the command again")


def authenticate_key(engine: Engine, secret: str) -> ApiKey | None:
    """The key a secret belongs to (even if revoked or expired: check ``.active``), else None."""
    # Ours are short ASCII; anything else (a huge or non-ASCII header) is unknown, not an error.
    if (
        not secret.startswith(SECRET_PREFIX)
        or len(secret) > _MAX_SECRET_CHARS
        or not secret.isascii()
    ):
        return None
    digest = hash_secret(secret)
    with engine.connect() as connection:
        row = connection.execute(
            select(*_COLUMNS, api_keys.c.secret_sha256).where(api_keys.c.secret_sha256 == digest)
        ).first()
    if row is None or not hmac.compare_digest(str(row.secret_sha256), digest):
        return None
    return _row_to_key(row)


def get_key(engine: Engine, key_id: str) -> ApiKey | None:
    """The key with this public id, or None."""
    with engine.connect() as connection:
        return _get(connection, key_id)


def _get(connection: Connection, key_id: str) -> ApiKey | None:
    row = connection.execute(select(*_COLUMNS).where(api_keys.c.id == key_id)).first()
    return None if row is None else _row_to_key(row)


def list_keys(engine: Engine, *, include_revoked: bool = True) -> list[ApiKey]:
    """All keys, oldest first; without the revoked ones when ``include_revoked`` is False."""
    query = select(*_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    with engine.connect() as connection:
        return [_row_to_key(row) for row in connection.execute(query)]


def revoke_key(engine: Engine, key_id: str) -> ApiKey:
    """Revoke a key now (a no-op on one already revoked); unknown ids are a StoreError."""
    key_id = key_id.strip()
    with engine.begin() as connection:
        # The write comes first, so SQLite takes its write lock before reading.
        connection.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=_now())
        )
        key = _get(connection, key_id)
    if key is None:
        raise StoreError(f"no API key with id {key_id!r}; see the ids with `trustune keys list`")
    return key
