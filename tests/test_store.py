"""The state layer (trustune.store) on real SQLite files: keys, roles, audit log, URLs, times.

The ``check_*`` functions take any database URL; tests/test_store_postgres.py runs them
against a real PostgreSQL server too.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trustune.errors import StoreError, TrustuneError
from trustune.store import (
    ApiKey,
    AuditEntry,
    Role,
    Store,
    default_db_url,
    hash_secret,
    normalize_url,
    parse_duration,
    parse_expiry,
    parse_since,
    safe_url,
)
from trustune.store.engine import make_store_engine

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def sqlite_url(tmp_path: Path, name: str = "state.db") -> str:
    return f"sqlite:///{tmp_path / name}"


# --- checks shared with the PostgreSQL tests --------------------------------------------------


def check_key_lifecycle(url: str) -> None:
    with Store.open(url) as store:
        key, secret = store.create_key(
            name="ci bot", role="explain", expires_at=datetime.now(UTC) + timedelta(days=30),
            rate_per_s=5.0, burst=7,
        )  # fmt: skip
        assert secret.startswith("tt_") and len(secret) >= 40
        assert key.id.startswith("k_") and key.role is Role.EXPLAIN
        assert (key.rate_per_s, key.burst, key.revoked_at) == (5.0, 7, None)
        assert key.created_at.tzinfo is not None and key.expires_at is not None

        found = store.authenticate(secret)
        assert found == key
        assert found is not None and found.active(datetime.now(UTC))
        assert not found.active(datetime.now(UTC) + timedelta(days=31))  # expired by then
        assert found.status(datetime.now(UTC) + timedelta(days=31)) == "expired"
        assert store.authenticate(secret + "x") is None
        assert store.authenticate("tt_" + "A" * 43) is None
        assert store.authenticate("not-a-key") is None
        assert store.authenticate("tt_" + "A" * 5000) is None
        assert store.authenticate("tt_\ud800é") is None

        other, other_secret = store.create_key(name="admin", role=Role.ADMIN)
        assert other_secret != secret and other.id != key.id
        assert (other.rate_per_s, other.burst, other.expires_at) == (20.0, 40, None)
        assert [k.id for k in store.list_keys()] == [key.id, other.id]
        assert store.get_key(key.id) == key and store.get_key("k_nothere") is None

        revoked = store.revoke_key(key.id)
        assert revoked.revoked_at is not None and not revoked.active(datetime.now(UTC))
        again = store.authenticate(secret)
        assert again is not None and again.revoked_at == revoked.revoked_at
        assert again.status(datetime.now(UTC)) == "revoked"
        assert store.revoke_key(key.id).revoked_at == revoked.revoked_at  # idempotent
        assert [k.id for k in store.list_keys(include_revoked=False)] == [other.id]
        with pytest.raises(StoreError, match=r"no API key with id 'k_nothere'.*keys list"):
            store.revoke_key("k_nothere")


def check_audit_log(url: str) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    entries = [
        AuditEntry(time=t0 + timedelta(minutes=i), key_id=f"k_{i:08x}", route="/v1/predict",
                   status=200 if i % 3 else 429, latency_ms=1.5 * i, n_texts=i)
        for i in range(10)
    ]  # fmt: skip
    with_text = AuditEntry(
        time=t0 + timedelta(hours=2), key_id=None, route="/v1/explain", status=401,
        latency_ms=0.25, n_texts=1, text="héllo wörld ✓",
    )  # fmt: skip
    with Store.open(url) as store:
        assert store.audit_entries() == []
        store.record(entries)
        store.record([with_text])
        store.record([])
        everything = store.audit_entries()
        assert everything == [*entries, with_text]
        assert all(e.time.tzinfo is not None for e in everything)
        assert [e.text for e in everything].count(None) == 10
        assert store.audit_entries(since=t0 + timedelta(minutes=8)) == [*entries[8:], with_text]
        assert store.audit_entries(limit=3) == [entries[8], entries[9], with_text]
        assert store.audit_entries(since=datetime.now(UTC)) == []
        with pytest.raises(StoreError, match="limit 0"):
            store.audit_entries(limit=0)
        cut = t0 + timedelta(minutes=4)  # entries 0-3 are older
        assert store.prune_audit(before=cut, dry_run=True) == 4
        assert store.audit_entries() == everything  # a dry run deletes nothing
        assert store.prune_audit(before=cut) == 4
        assert store.audit_entries() == [*entries[4:], with_text]
        assert store.prune_audit(before=cut) == 0


def check_two_stores_share_revocation(url: str) -> None:
    with Store.open(url) as server_a, Store.open(url) as server_b:
        key, secret = server_a.create_key(name="shared", role="predict")
        seen = server_b.authenticate(secret)
        assert seen is not None and seen.active(datetime.now(UTC))
        server_b.revoke_key(key.id)
        after = server_a.authenticate(secret)
        assert after is not None and not after.active(datetime.now(UTC))


def check_concurrent_open(url: str) -> None:
    """Several processes' worth of engines creating the tables at the same moment."""
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_and_use(i: int) -> None:
        try:
            barrier.wait()
            with Store.open(url) as store:
                store.create_key(name=f"worker {i}", role="predict")
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=open_and_use, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with Store.open(url) as store:
        assert sorted(k.name for k in store.list_keys()) == [f"worker {i}" for i in range(4)]


# --- SQLite ------------------------------------------------------------------------------------


def test_key_lifecycle_sqlite(tmp_path: Path) -> None:
    check_key_lifecycle(sqlite_url(tmp_path))


def test_audit_log_sqlite(tmp_path: Path) -> None:
    check_audit_log(sqlite_url(tmp_path))


def test_two_stores_share_revocation_sqlite(tmp_path: Path) -> None:
    check_two_stores_share_revocation(sqlite_url(tmp_path))


def test_concurrent_open_sqlite(tmp_path: Path) -> None:
    check_concurrent_open(sqlite_url(tmp_path))


def test_concurrent_open_sqlite_stress(tmp_path: Path) -> None:
    """Many fresh files, each opened by four threads at once: the WAL switch must wait, not fail.

    Before the switch retried, about one trial in ten failed with "database is locked".
    """
    for trial in range(100):
        check_concurrent_open(sqlite_url(tmp_path, f"trial-{trial}.db"))


def _open_and_create(url: str, name: str) -> str:
    try:
        with Store.open(url) as store:
            store.create_key(name=name, role="predict")
    except TrustuneError as e:
        return str(e)
    return ""


def test_concurrent_open_sqlite_processes(tmp_path: Path) -> None:
    """The same race between processes (as four `trustune keys create` started together)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        for trial in range(30):
            url = sqlite_url(tmp_path, f"proc-{trial}.db")
            errors = pool.starmap(_open_and_create, [(url, f"p{i}") for i in range(4)])
            assert errors == ["", "", "", ""]
            with Store.open(url) as store:
                assert sorted(k.name for k in store.list_keys()) == ["p0", "p1", "p2", "p3"]


def test_in_memory_sqlite() -> None:
    with Store.open("sqlite://") as store:
        key, secret = store.create_key(name="mem", role="admin")
        assert store.authenticate(secret) == key


def test_sqlite_file_is_wal_and_holds_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store.open(str(path)) as store:  # a bare path means a SQLite file
        _, secret = store.create_key(name="k", role="predict")
        store.record([AuditEntry(NOW, None, "/v1/predict", 200, 1.0, 2)])
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = raw.execute("SELECT secret_sha256 FROM trustune_api_keys").fetchall()
    assert stored == [(hash_secret(secret),)]
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes()


def test_roles() -> None:
    allowed = {(have, need) for have in Role for need in Role if have.allows(need)}
    assert allowed == {
        (Role.PREDICT, Role.PREDICT), (Role.EXPLAIN, Role.PREDICT), (Role.EXPLAIN, Role.EXPLAIN),
        (Role.ADMIN, Role.PREDICT), (Role.ADMIN, Role.EXPLAIN), (Role.ADMIN, Role.ADMIN),
    }  # fmt: skip
    assert Role.parse(" Explain ") is Role.EXPLAIN
    with pytest.raises(StoreError, match="unknown role 'root'; choose one of predict, explain"):
        Role.parse("root")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": " ", "role": "predict"}, "needs a name"),
        ({"name": "x", "role": "boss"}, "unknown role 'boss'"),
        ({"name": "x", "role": "predict", "rate_per_s": 0.0}, "pass --rate above 0"),
        ({"name": "x", "role": "predict", "rate_per_s": float("nan")}, "--rate above 0"),
        ({"name": "x", "role": "predict", "burst": 0}, "pass --burst of 1 or more"),
        ({"name": "x", "role": "predict", "expires_at": NOW - timedelta(days=1)}, "in the past"),
    ],
)  # fmt: skip
def test_create_key_refuses_bad_options(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with Store.open(sqlite_url(tmp_path)) as store:
        with pytest.raises(StoreError, match=message):
            store.create_key(**options)  # type: ignore[arg-type]
        assert store.list_keys() == []


def test_secrets_never_in_reprs(tmp_path: Path) -> None:
    with Store.open(sqlite_url(tmp_path)) as store:
        key, secret = store.create_key(name="k", role="predict")
    assert repr(secret) == "[secret]" and f"{secret!r}" == "[secret]"
    assert secret not in repr(key) and secret not in repr((key, secret))
    assert isinstance(key, ApiKey) and "secret" not in key.to_json()


def test_database_passwords_never_shown() -> None:
    url = "postgresql://trustune:hunter2@127.0.0.1:1/state"
    parsed = normalize_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert "hunter2" not in safe_url(url) and "***" in safe_url(parsed)
    assert "hunter2" not in safe_url("postgresql://trustune:hunter2@[bad")
    store = Store(make_store_engine(parsed), parsed)  # the engine connects lazily
    assert "hunter2" not in repr(store) and "hunter2" not in store.url
    with pytest.raises(StoreError) as refused:
        Store.open(url)  # nothing listens on port 1
    message = str(refused.value)
    assert "hunter2" not in message and "\n" not in message
    assert "check --db / $TRUSTUNE_DB and that the PostgreSQL server is running" in message


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTUNE_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_db_url() == f"sqlite:///{tmp_path.resolve() / 'trustune.db'}"
    monkeypatch.setenv("TRUSTUNE_DB", "postgresql://u@h/db")
    assert default_db_url() == "postgresql://u@h/db"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("state.db").database == str(tmp_path.resolve() / "state.db")
    with pytest.raises(StoreError, match=r"unsupported database 'mysql'.*sqlite:///PATH"):
        normalize_url("mysql://u@h/db")
    with pytest.raises(StoreError, match="empty database URL"):
        normalize_url(" ")
    with pytest.raises(
        StoreError, match=r"folder .*missing for the database does not exist; create it"
    ):
        Store.open(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    with pytest.raises(StoreError, match=r"no database at .*keys create"):
        Store.open(str(tmp_path / "absent.db"), create=False)
    assert not (tmp_path / "absent.db").exists()


def test_store_error_is_a_trustune_error() -> None:
    assert issubclass(StoreError, TrustuneError) and StoreError.exit_code == 2


def test_times() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration("2027-01-01") is None
    assert parse_expiry("30d", now=NOW) == NOW + timedelta(days=30)
    assert parse_expiry("2027-01-31", now=NOW) == datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_expiry("2027-01-31T12:00+01:00", now=NOW) == datetime(2027, 1, 31, 11, tzinfo=UTC)
    assert parse_since("1h", now=NOW) == NOW - timedelta(hours=1)
    assert parse_since("2026-11-30T08:00:00", now=NOW) == datetime(2026, 11, 30, 8, tzinfo=UTC)
    with pytest.raises(StoreError, match=r"cannot read --expires 'soon'; pass a duration such"):
        parse_expiry("soon", now=NOW)
    with pytest.raises(StoreError, match="not in the future"):
        parse_expiry("2020-01-01", now=NOW)
    with pytest.raises(StoreError, match="cannot read --since"):
        parse_since("99999999999999d", now=NOW)
