"""Database URLs and engines: SQLite by default, PostgreSQL (psycopg 3) for shared state.

The URL is the only configuration. Passwords in it are never shown: every message and repr
goes through :func:`safe_url`. SQLite files run in WAL mode with a busy timeout, so the server
and the CLI can use one file at the same time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from trustune.errors import StoreError

__all__ = [
    "DEFAULT_DB_FILE",
    "ENV_DB",
    "add_sqlite_pragmas",
    "database_errors",
    "default_db_url",
    "make_store_engine",
    "normalize_url",
    "require_existing",
    "safe_url",
    "sqlite_engine_options",
]

ENV_DB = "TRUSTUNE_DB"
DEFAULT_DB_FILE = "trustune.db"
# How long a SQLite writer waits for another process's write lock, and a PostgreSQL
# connection attempt waits for the server, before giving up with an error.
SQLITE_BUSY_TIMEOUT_S = 10.0
POSTGRES_CONNECT_TIMEOUT_S = 5

_URL_HINT = "use sqlite:///PATH (a file) or postgresql://USER:PASSWORD@HOST:PORT/DB"
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}


def default_db_url() -> str:
    """$TRUSTUNE_DB if set, else ``sqlite:///<cwd>/trustune.db`` (an absolute path)."""
    from_env = os.environ.get(ENV_DB, "").strip()
    if from_env:
        return from_env
    return f"sqlite:///{(Path.cwd() / DEFAULT_DB_FILE).resolve()}"


def normalize_url(url: str) -> URL:
    """Parse a database URL; plain PostgreSQL URLs use psycopg 3, a bare path means SQLite."""
    text = url.strip()
    if not text:
        raise StoreError(f"empty database URL; {_URL_HINT}")
    if "://" not in text:
        # A bare path: a SQLite file, relative to the working directory.
        return make_url(f"sqlite:///{Path(text).expanduser().resolve()}")
    try:
        parsed = make_url(text)
    except (exc.ArgumentError, ValueError) as e:
        raise StoreError(f"cannot parse the database URL {_scrub(text)!r}; {_URL_HINT}") from e
    scheme = parsed.drivername
    if scheme in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    if scheme in {"sqlite", "sqlite+pysqlite"}:
        return parsed
    raise StoreError(f"unsupported database {scheme!r} in --db / ${ENV_DB}; {_URL_HINT}")


def safe_url(url: URL | str) -> str:
    """The URL as text with its password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (exc.ArgumentError, ValueError):
        return _scrub(url)


def _scrub(text: str) -> str:
    # An unparsable URL may still hold a password between "user:" and "@".
    head, sep, tail = text.partition("://")
    if not sep or "@" not in tail:
        return text
    auth, _, host = tail.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{head}://{user}:***@{host}" if ":" in auth else text


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def require_existing(url: URL) -> None:
    """A :class:`StoreError` when ``url`` is a SQLite file that does not exist."""
    if is_sqlite(url) and not _is_memory(url):
        path = Path(str(url.database)).expanduser()
        if not path.is_file():
            raise StoreError(
                f"no database at {path.resolve()}; create a key first with "
                "`trustune keys create`, or pass the right --db / $TRUSTUNE_DB"
            )


def make_store_engine(url: URL) -> Engine:
    """An engine for ``url`` with the settings concurrent use needs (WAL, timeouts, pre-ping)."""
    if is_sqlite(url):
        return _sqlite_engine(url)
    try:
        import psycopg  # noqa: F401
    except ImportError as e:
        raise StoreError(
            "PostgreSQL needs the psycopg driver; install it with pip install 'trustune[serve]'"
        ) from e
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


def sqlite_engine_options(url: URL) -> dict[str, Any]:
    """The ``create_engine`` keywords of a SQLite URL (busy timeout, one pool for all threads);
    a missing folder is a :class:`StoreError`."""
    kwargs: dict[str, Any] = {
        # The pool hands a connection to one thread at a time; the server uses several threads.
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    }
    if _is_memory(url):
        kwargs["poolclass"] = StaticPool  # one shared in-memory database
    else:
        folder = Path(str(url.database)).expanduser().resolve().parent
        if not folder.is_dir():
            raise StoreError(
                f"the folder {folder} for the database does not exist; "
                "create it or pass another --db"
            )
    return kwargs


def add_sqlite_pragmas(engine: Engine, url: URL) -> None:
    """Every new connection of ``engine`` waits for locks and uses WAL (for engines made by
    another library, such as Optuna's storage, as for the store's own)."""

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if not _is_memory(url):
                # WAL: readers never block the writer, so CLI and server share one file.
                _switch_to_wal(cursor)
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, **sqlite_engine_options(url))
    add_sqlite_pragmas(engine, url)
    return engine


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode, waiting while another connection holds the lock the switch needs.

    SQLite answers ``PRAGMA journal_mode = WAL`` with "database is locked" at once, without calling
    the busy handler, when another connection is creating or switching the same new file. The mode
    is stored in the file, so once any connection has switched it the others find it set.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    pause = 0.002
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            if time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


@contextlib.contextmanager
def database_errors(url: URL, doing: str) -> Iterator[None]:
    """Turn driver errors into one-line :class:`StoreError` messages without the password."""
    try:
        yield
    except exc.DBAPIError as e:
        raise StoreError(_describe(url, doing, e)) from None
    except exc.SQLAlchemyError as e:
        raise StoreError(f"cannot {doing} in {safe_url(url)}: {type(e).__name__}") from None


def _describe(url: URL, doing: str, error: exc.DBAPIError) -> str:
    reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else "unknown"
    if url.password:
        reason = reason.replace(str(url.password), "***")
    where = safe_url(url)
    if isinstance(error, exc.OperationalError):
        fix = (
            "check --db / $TRUSTUNE_DB and that the file is writable"
            if is_sqlite(url)
            else "check --db / $TRUSTUNE_DB and that the PostgreSQL server is running"
        )
        return f"cannot {doing} in {where}: {reason}; {fix}"
    return f"cannot {doing} in {where}: {reason}"
