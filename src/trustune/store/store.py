"""The front door of the state layer: one :class:`Store` over keys and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from trustune.store import audit, keys
from trustune.store.audit import AuditEntry
from trustune.store.engine import (
    database_errors,
    default_db_url,
    make_store_engine,
    normalize_url,
    require_existing,
    safe_url,
)
from trustune.store.keys import DEFAULT_BURST, DEFAULT_RATE_PER_S, ApiKey, ApiSecret, Role
from trustune.store.schema import create_tables

__all__ = ["Store"]


class Store:
    """API keys and the audit log in one SQLAlchemy database (SQLite file or PostgreSQL).

    Thread-safe: every call takes a pooled connection of its own. Use :meth:`open`.
    """

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._url = url

    @classmethod
    def open(cls, url: str | None = None, *, create: bool = True) -> Store:
        """Connect and create the tables if missing; ``url`` None means :func:`default_db_url`.

        With ``create=False`` a SQLite file that does not exist yet is an error rather than a
        new empty database (for commands that only read or change existing keys).
        """
        parsed = normalize_url(default_db_url() if url is None else url)
        if not create:
            require_existing(parsed)
        engine = make_store_engine(parsed)
        try:
            with database_errors(parsed, "open the database"):
                create_tables(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, parsed)

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return safe_url(self._url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def create_key(
        self, *, name: str, role: Role | str, expires_at: datetime | None = None,
        rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST,
    ) -> tuple[ApiKey, str]:  # fmt: skip
        """A new key and its secret; the secret is shown once and only its hash is kept."""
        with database_errors(self._url, "create the key"):
            key, secret = keys.create_key(
                self._engine, name=name, role=role, expires_at=expires_at,
                rate_per_s=rate_per_s, burst=burst,
            )  # fmt: skip
        return key, ApiSecret(secret)

    def authenticate(self, secret: str) -> ApiKey | None:
        """The key of ``secret`` (revoked or expired ones too: check ``.active``), else None."""
        with database_errors(self._url, "look up the key"):
            return keys.authenticate_key(self._engine, secret)

    def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""
        with database_errors(self._url, "look up the key"):
            return keys.get_key(self._engine, key_id)

    def list_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """All keys, oldest first."""
        with database_errors(self._url, "list the keys"):
            return keys.list_keys(self._engine, include_revoked=include_revoked)

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke at once; a :class:`~trustune.errors.StoreError` naming the id if unknown."""
        with database_errors(self._url, "revoke the key"):
            return keys.revoke_key(self._engine, key_id)

    def record(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit entries (one transaction per batch)."""
        with database_errors(self._url, "write the audit log"):
            audit.record_entries(self._engine, entries)

    def audit_entries(
        self, *, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Entries at or after ``since``, oldest first; with ``limit`` only the latest ones."""
        with database_errors(self._url, "read the audit log"):
            return audit.audit_entries(self._engine, since=since, limit=limit)

    def prune_audit(self, *, before: datetime, dry_run: bool = False) -> int:
        """Delete audit entries older than ``before``; how many (``dry_run``: only count them)."""
        with database_errors(self._url, "prune the audit log"):
            return audit.prune_entries(self._engine, before=before, dry_run=dry_run)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()
