"""Optuna's study storage on the store's database layer: the same URLs (a SQLite file or
PostgreSQL, passwords hidden in messages) and, for SQLite, the same connection settings as the
key and audit store (busy timeout, WAL), so a study survives a killed process and can be read
while it runs."""

from __future__ import annotations

from typing import Any

from trustune.store.engine import (
    add_sqlite_pragmas,
    database_errors,
    is_sqlite,
    normalize_url,
    sqlite_engine_options,
)

__all__ = ["study_storage"]


def study_storage(url: str) -> Any:
    """An ``optuna.storages.RDBStorage`` on ``url`` (tables created on first use)."""
    import optuna
    from sqlalchemy.engine import URL

    parsed: URL = normalize_url(url)
    kwargs = sqlite_engine_options(parsed) if is_sqlite(parsed) else {"pool_pre_ping": True}
    with database_errors(parsed, "open the study database"):
        storage = optuna.storages.RDBStorage(
            parsed.render_as_string(hide_password=False), engine_kwargs=kwargs
        )
        if is_sqlite(parsed):
            add_sqlite_pragmas(storage.engine, parsed)
            storage.engine.dispose()  # the connections opened so far lack the pragmas
    return storage
