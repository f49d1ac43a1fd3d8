"""`trustune keys`, `trustune audit log` and `audit prune`: the real command (subprocesses) on a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trustune.cli.main import main
from trustune.store import AuditEntry, Role, Store

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("TRUSTUNE_")},
    "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200",
}  # fmt: skip


def trustune_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip


def test_key_lifecycle_through_the_command(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    created = trustune_cli(
        "keys", "create", "--name", "ci bot", "--role", "explain", "--expires", "30d",
        "--rate", "5", "--burst", "7", "--db", db,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    summary, secret = created.stdout.strip().splitlines()
    assert summary.startswith("created key k_") and "role explain" in summary
    assert secret.startswith("tt_") and len(secret) >= 40
    assert "only time the secret is shown" in created.stderr and secret not in created.stderr
    key_id = summary.split()[2]

    # This process plays the server: it keeps its store (and pooled connection) open.
    with Store.open(db) as server:
        key = server.authenticate(secret)
        assert key is not None and key.id == key_id and key.active(datetime.now(UTC))
        assert (key.role, key.rate_per_s, key.burst) == (Role.EXPLAIN, 5.0, 7)
        assert key.expires_at is not None
        assert timedelta(days=29) < key.expires_at - datetime.now(UTC) <= timedelta(days=30)

        listed = trustune_cli("keys", "list", "--json", "--db", db)
        assert listed.returncode == 0, listed.stderr
        assert secret not in listed.stdout
        (row,) = json.loads(listed.stdout)
        assert (row["id"], row["name"], row["status"], row["burst"]) == (key_id, "ci bot",
                                                                         "active", 7)  # fmt: skip
        assert "secret" not in row and "secret_sha256" not in row

        revoked = trustune_cli("keys", "revoke", key_id, "--db", db)
        assert revoked.returncode == 0, revoked.stderr
        assert f"revoked key {key_id} (ci bot)" in revoked.stdout
        after = server.authenticate(secret)  # at once, in the other process
        assert after is not None and after.revoked_at is not None
        assert not after.active(datetime.now(UTC))

        now = datetime.now(UTC)
        server.record([
            AuditEntry(now - timedelta(days=3), key_id, "/v1/predict", 200, 3.5, 2),
            AuditEntry(now - timedelta(minutes=5), key_id, "/v1/explain", 401, 0.5, 1),
        ])  # fmt: skip
    # Only now: opening the file otherwise in a process drops that process's SQLite locks.
    for file in tmp_path.iterdir():
        assert secret.encode() not in file.read_bytes()
    log = trustune_cli("audit", "log", "--since", "1h", "--json", "--db", db)
    assert log.returncode == 0, log.stderr
    (entry,) = json.loads(log.stdout)
    assert (entry["key_id"], entry["route"], entry["status"], entry["n_texts"], entry["text"]) == (
        key_id, "/v1/explain", 401, 1, None,
    )  # fmt: skip

    pruned = trustune_cli("audit", "prune", "--older-than", "1d", "--json", "--db", db)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["entries"] == 1  # the 3-day-old one
    remaining = trustune_cli("audit", "log", "--json", "--db", db)
    assert [e["route"] for e in json.loads(remaining.stdout)] == ["/v1/explain"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "state.db")
    code, out, _ = _run(capsys, "keys", "create", "--name", "[bold]x", "--role", "admin",
                          "--db", db)  # fmt: skip
    assert code == 0 and "role admin, expires never, 20 requests/s, burst 40" in out
    secret = out.strip().splitlines()[-1]
    code, out, _ = _run(capsys, "keys", "list", "--db", db)
    assert code == 0 and "[bold]x" in out and "admin" in out and "active" in out
    assert secret not in out
    with Store.open(db) as store:
        key = store.authenticate(secret)
        assert key is not None
        store.record([
            AuditEntry(datetime.now(UTC), key.id, "/v1/predict", 200, 12.25, 3, text="salut"),
        ])  # fmt: skip
    code, out, _ = _run(capsys, "audit", "log", "--db", db)
    assert code == 0 and "/v1/predict" in out and "12.2" in out and "salut" in out
    code, out, _ = _run(capsys, "keys", "create", "--name", "j", "--role", "predict", "--json",
                        "--db", db)  # fmt: skip
    made = json.loads(out)
    assert made["role"] == "predict" and made["secret"].startswith("tt_")
    code, out, _ = _run(capsys, "keys", "list", "--active", "--json", "--db", db)
    assert len(json.loads(out)) == 2 and made["secret"] not in out
    assert _run(capsys, "keys", "revoke", made["id"], "--db", db)[1].startswith("revoked key")
    code, out, _ = _run(capsys, "keys", "revoke", made["id"], "--db", db)
    assert code == 0 and f"key {made['id']} (j) was already revoked at" in out
    code, out, _ = _run(capsys, "keys", "list", "--active", "--json", "--db", db)
    assert [k["name"] for k in json.loads(out)] == ["[bold]x"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--name", "x", "--role", "boss"],
         "unknown role 'boss'; choose one of predict, explain, admin"),
        (["keys", "create", "--name", "x", "--role", "predict", "--expires", "soon"],
         "cannot read --expires 'soon'; pass a duration such as 30m"),
        (["keys", "create", "--name", "x", "--role", "predict", "--expires", "2020-01-01"],
         "--expires '2020-01-01' is not in the future"),
        (["keys", "create", "--name", "x", "--role", "predict", "--rate", "0"],
         "pass --rate above 0"),
        (["keys", "revoke", "k_nope"], "no API key with id 'k_nope'"),
        (["audit", "log", "--since", "yesterday"], "cannot read --since 'yesterday'"),
        (["audit", "log", "--limit", "0"], "--limit 0 is not allowed; pass 1 or more"),
        (["audit", "prune", "--older-than", "ages"], "cannot read --older-than 'ages'"),
        (["audit", "prune", "--older-than", "2999-01-01"], "is in the future and would delete"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    db = str(tmp_path / "state.db")
    with Store.open(db):
        pass
    code, out, err = _run(capsys, *args, "--db", db)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_missing_or_unreachable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "keys", "list", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "no database at" in err and "trustune keys create" in err
    assert not (tmp_path / "none.db").exists()
    code, _, err = _run(capsys, "audit", "log", "--db", "postgresql://u:hunter2@127.0.0.1:1/db")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "hunter2" not in err and "PostgreSQL server is running" in err


def test_default_database_is_trustune_db_in_cwd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRUSTUNE_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, _ = _run(capsys, "keys", "create", "--name", "here", "--role", "predict")
    assert code == 0 and (tmp_path / "trustune.db").is_file()
    monkeypatch.setenv("TRUSTUNE_DB", f"sqlite:///{tmp_path / 'other.db'}")
    code, _, _ = _run(capsys, "keys", "create", "--name", "there", "--role", "predict")
    assert code == 0 and (tmp_path / "other.db").is_file()
    code, out, _ = _run(capsys, "keys", "list", "--json")
    assert [k["name"] for k in json.loads(out)] == ["there"]
