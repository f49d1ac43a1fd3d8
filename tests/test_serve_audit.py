"""The audit writer against a SQLite file another connection holds locked: entries wait and arrive,
and those that cannot be written in time are counted in /metrics and logged without user text."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

import trustune
from test_serve_support import metric, wait_until
from trustune.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def classifier(tiny_run: Path) -> Any:
    return trustune.load(tiny_run)


def _store_that_gives_up_fast(path: Path) -> Any:
    """A store whose SQLite connections wait only 50 ms for a lock (not 10 s), so a held lock
    makes each write attempt fail quickly, as a long-held lock would."""
    from sqlalchemy import event

    from trustune.store import Store
    from trustune.store.engine import make_store_engine, normalize_url
    from trustune.store.schema import create_tables

    url = normalize_url(f"sqlite:///{path}")
    engine = make_store_engine(url)

    @event.listens_for(engine, "connect")
    def _short_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout = 50")

    create_tables(engine)
    return Store(engine, url)


def _lock(path: Path) -> sqlite3.Connection:
    """Another writer: holds the database's write lock until it rolls back."""
    locker = sqlite3.connect(path, isolation_level=None, timeout=10)
    locker.execute("BEGIN IMMEDIATE")
    return locker


def test_entries_written_while_the_database_is_locked_all_arrive(
    classifier: Any, tmp_path: Path
) -> None:
    path = tmp_path / "audit.db"
    store = _store_that_gives_up_fast(path)
    settings = ServeSettings(auth=False, audit_flush_ms=10, audit_retry_s=120)
    app = create_app(classifier, settings=settings, store=store)
    writer = app.state.trustune.audit
    with TestClient(app) as c:
        locker = _lock(path)
        try:
            statuses = [
                c.post("/v1/predict", json={"texts": [f"text {i}"]}).status_code for i in range(25)
            ]
            wait_until(lambda: writer.retries >= 2, what="two failed attempts against the lock")
            page = c.get("/metrics").text
        finally:
            locker.rollback()
            locker.close()
    assert statuses == [200] * 25
    assert metric(page, "trustune_audit_write_retries_total") >= 2
    predicted = [e for e in store.audit_entries() if e.route == "POST /v1/predict"]
    assert len(predicted) == 25
    assert writer.dropped == 0
    store.close()


def test_entries_that_cannot_be_written_in_time_are_counted_and_logged(
    classifier: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.db"
    store = _store_that_gives_up_fast(path)
    settings = ServeSettings(auth=False, audit_flush_ms=10, audit_retry_s=0.3, log_texts=True)
    app = create_app(classifier, settings=settings, store=store)
    writer = app.state.trustune.audit
    locker = _lock(path)
    try:
        with caplog.at_level(logging.ERROR, logger="trustune.serve"), TestClient(app) as c:
            for _ in range(3):
                assert c.post("/v1/predict", json={"texts": ["private words"]}).status_code == 200
            wait_until(lambda: writer.dropped >= 3, what="the entries to be given up")
            page = c.get("/metrics").text
    finally:
        locker.rollback()
        locker.close()
    assert metric(page, "trustune_audit_dropped_total") >= 3
    messages = [r.getMessage() for r in caplog.records if r.name == "trustune.serve"]
    assert any("entries dropped" in m for m in messages)
    assert not any("private words" in m for m in messages)
    assert writer.written + writer.dropped == writer.added  # none lost without a count
    store.close()
