"""The audit log: one row per request (who, what route, outcome, how long, how many texts).

The raw text is stored only when the caller passes it, which the server does only when raw-text
logging is explicitly enabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select

from trustune.errors import StoreError
from trustune.store.schema import audit_log

__all__ = ["AuditEntry", "audit_entries", "prune_entries", "record_entries"]

_MAX_ROUTE_CHARS = 200


@dataclass(frozen=True)
class AuditEntry:
    """One request as the audit log keeps it."""

    time: datetime
    key_id: str | None
    route: str
    status: int
    latency_ms: float
    n_texts: int
    text: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, the time as ISO 8601 UTC."""
        return {
            "time": self.time.isoformat(),
            "key_id": self.key_id,
            "route": self.route,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "n_texts": self.n_texts,
            "text": self.text,
        }


def _row_values(entry: AuditEntry) -> dict[str, Any]:
    when = entry.time if entry.time.tzinfo is not None else entry.time.replace(tzinfo=UTC)
    return {
        "time": when,
        "key_id": entry.key_id,
        "route": entry.route[:_MAX_ROUTE_CHARS],
        "status": int(entry.status),
        "latency_ms": float(entry.latency_ms),
        "n_texts": int(entry.n_texts),
        "text": entry.text,
    }


def record_entries(engine: Engine, entries: Sequence[AuditEntry]) -> None:
    """Insert a batch of entries in one transaction."""
    if not entries:
        return
    rows = [_row_values(entry) for entry in entries]
    with engine.begin() as connection:
        connection.execute(insert(audit_log), rows)


def audit_entries(
    engine: Engine, *, since: datetime | None = None, limit: int | None = None
) -> list[AuditEntry]:
    """Entries at or after ``since``, oldest first; with ``limit``, only the latest ``limit``."""
    if limit is not None and limit < 1:
        raise StoreError(f"limit {limit} is not allowed; pass --limit of 1 or more")
    query = select(audit_log).order_by(audit_log.c.time.desc(), audit_log.c.id.desc())
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        query = query.where(audit_log.c.time >= since)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        rows = list(connection.execute(query))
    rows.reverse()
    return [_entry(row) for row in rows]


def prune_entries(engine: Engine, *, before: datetime, dry_run: bool = False) -> int:
    """Delete the entries older than ``before`` (one transaction); how many there were."""
    if before.tzinfo is None:
        before = before.replace(tzinfo=UTC)
    older = audit_log.c.time < before
    with engine.begin() as connection:
        if dry_run:
            return int(connection.execute(select(func.count()).where(older)).scalar_one())
        return int(connection.execute(delete(audit_log).where(older)).rowcount)


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        time=row.time, key_id=row.key_id, route=row.route, status=int(row.status),
        latency_ms=float(row.latency_ms), n_texts=int(row.n_texts), text=row.text,
    )  # fmt: skip
