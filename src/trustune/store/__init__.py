"""State of the HTTP service: API keys and the audit log in a real database (SQLAlchemy 2).

A SQLite file by default (WAL mode, so the server and the CLI share it), PostgreSQL by URL
(``postgresql://...``, psycopg 3) so several server replicas share keys and revocations.

- :mod:`~trustune.store.engine`: database URLs (passwords hidden), engines, error messages
- :mod:`~trustune.store.schema`: the tables, created on open (idempotent, concurrent-safe)
- :mod:`~trustune.store.keys`: roles, random secrets shown once, SHA-256 hashes at rest
- :mod:`~trustune.store.audit`: one audit entry per request; raw text only when enabled
- :mod:`~trustune.store.times`: durations and ISO times for ``--expires`` and ``--since``
- :mod:`~trustune.store.store`: :class:`Store`, the front door over all of them
"""

from __future__ import annotations

from trustune.store.audit import AuditEntry
from trustune.store.engine import ENV_DB, default_db_url, normalize_url, safe_url
from trustune.store.keys import (
    DEFAULT_BURST,
    DEFAULT_RATE_PER_S,
    ApiKey,
    ApiSecret,
    Role,
    hash_secret,
)
from trustune.store.store import Store
from trustune.store.times import parse_duration, parse_expiry, parse_since

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_RATE_PER_S",
    "ENV_DB",
    "ApiKey",
    "ApiSecret",
    "AuditEntry",
    "Role",
    "Store",
    "default_db_url",
    "hash_secret",
    "normalize_url",
    "parse_duration",
    "parse_expiry",
    "parse_since",
    "safe_url",
]
