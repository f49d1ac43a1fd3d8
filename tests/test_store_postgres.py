"""trustune.store against a real PostgreSQL server.

CI (`.ci/run`) starts one on loopback and sets $TRUSTUNE_TEST_POSTGRES_URL. Without it, these
tests start a throwaway cluster themselves when PostgreSQL's `initdb` is installed (Debian:
`apt-get install postgresql`), and skip otherwise. Each test gets a database of its own.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from test_store import (
    check_audit_log,
    check_concurrent_open,
    check_key_lifecycle,
    check_two_stores_share_revocation,
)
from trustune.cli.main import main
from trustune.store import Store, normalize_url

psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (the dev extra)")

ENV_URL = "TRUSTUNE_TEST_POSTGRES_URL"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("TRUSTUNE_")},
    "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200",
}  # fmt: skip


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps the server programs out of PATH, one folder per major version.
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server: CI's, or a throwaway cluster started here."""
    from_ci = os.environ.get(ENV_URL)
    if from_ci:
        yield from_ci
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip(f"no PostgreSQL: set ${ENV_URL} or install postgresql (initdb, pg_ctl)")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        run_as = ["runuser", "-u", "postgres", "--"]
        # The cluster's owner must reach its folder; pytest's tmp folders are root-only.
        folder = Path(tempfile.mkdtemp(prefix="trustune-test-pg-"))
        os.chown(folder, account.pw_uid, account.pw_gid)
    else:
        folder = tmp_path_factory.mktemp("postgres")
    data, port = folder / "data", _free_port()
    try:
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
             "--no-sync"], check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60",
             "-o", options, "start"], check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*run_as, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True, timeout=120,
            )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the server, dropped afterwards."""
    server = normalize_url(postgres_server).set(drivername="postgresql")
    name = f"trustune_test_{secrets.token_hex(4)}"
    admin = server.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_key_lifecycle_postgres(pg_url: str) -> None:
    check_key_lifecycle(pg_url)


def test_audit_log_postgres(pg_url: str) -> None:
    check_audit_log(pg_url)


def test_two_stores_share_revocation_postgres(pg_url: str) -> None:
    check_two_stores_share_revocation(pg_url)


def test_concurrent_open_postgres(pg_url: str) -> None:
    check_concurrent_open(pg_url)


def test_revocation_by_another_process_postgres(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server process sees a revocation made by `trustune keys revoke` elsewhere, at once."""
    with Store.open(pg_url) as server:
        key, secret = server.create_key(name="replica test", role="explain")
        seen = server.authenticate(secret)
        assert seen is not None and seen.active(datetime.now(UTC))  # the pool holds a connection
        revoked = subprocess.run(
            [sys.executable, "-m", "trustune.cli.main", "keys", "revoke", key.id, "--db", pg_url],
            capture_output=True, text=True, env=ENV, timeout=300,
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        assert f"revoked key {key.id}" in revoked.stdout
        after = server.authenticate(secret)
        assert after is not None and after.revoked_at is not None
        assert not after.active(datetime.now(UTC))
    assert main(["keys", "list", "--json", "--db", pg_url]) == 0
    listed = capsys.readouterr().out
    assert [(k["id"], k["status"]) for k in json.loads(listed)] == [(key.id, "revoked")]
    assert secret not in listed
