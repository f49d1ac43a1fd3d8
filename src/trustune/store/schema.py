"""The tables: ``api_keys`` (hashes, never secrets) and ``audit_log``; created on open.

Creating is idempotent and safe when several processes open a new database at once:
``CREATE ... IF NOT EXISTS`` everywhere, and on PostgreSQL under a transaction-scoped
advisory lock (concurrent ``CREATE TABLE IF NOT EXISTS`` can still collide there).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.types import TypeDecorator

__all__ = ["SCHEMA_VERSION", "UTCDateTime", "api_keys", "audit_log", "create_tables", "metadata"]

SCHEMA_VERSION = 1
# Any fixed 64-bit number: the advisory lock that serializes table creation on PostgreSQL.
_CREATE_LOCK_ID = 0x7472757374756E65  # "trustune"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass a tz-aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


metadata = MetaData()

# The row id of an audit entry: 64-bit on PostgreSQL, SQLite's INTEGER rowid there.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

api_keys = Table(
    "trustune_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    # SHA-256 hex of the secret: a random 256-bit key needs no slow KDF.
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("rate_per_s", Float(), nullable=False),
    Column("burst", Integer(), nullable=False),
)

audit_log = Table(
    "trustune_audit_log",
    metadata,
    Column("id", _ROW_ID, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime(), nullable=False),
    Column("key_id", String(32), nullable=True),
    Column("route", String(200), nullable=False),
    Column("status", Integer(), nullable=False),
    Column("latency_ms", Float(), nullable=False),
    Column("n_texts", Integer(), nullable=False),
    # Only when the server runs with raw-text logging explicitly enabled.
    Column("text", Text(), nullable=True),
    Index("ix_trustune_audit_log_time", "time"),
)


def create_tables(engine: Engine) -> None:
    """Create the tables and indexes that are missing; leaves existing ones as they are."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _CREATE_LOCK_ID}
            )
        for table in metadata.sorted_tables:
            connection.execute(CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                connection.execute(CreateIndex(index, if_not_exists=True))
