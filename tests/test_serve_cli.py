"""`trustune serve` as a real subprocess: it refuses an open server without keys, and SIGTERM
lets the request in flight finish (and its audit entry reach the database) before it exits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx

from test_serve_support import bearer, free_port

TRUSTUNE = [sys.executable, "-m", "trustune.cli.main"]


def test_no_auth_off_loopback_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [*TRUSTUNE, "serve", str(tiny_run), "--host", "0.0.0.0", "--no-auth"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "may only listen on 127.0.0.1" in result.stderr


def test_a_port_in_use_is_refused_before_the_model_loads(tiny_run: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*TRUSTUNE, "serve", str(tiny_run), "--port", str(port), "--db",
             f"sqlite:///{tmp_path / 'serve.db'}"],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback, no uvicorn log
    assert f"127.0.0.1:{port} is already in use" in lines[0]
    assert f"--port {port + 1}" in lines[0]
    assert "serving on" not in result.stderr + result.stdout
    assert not (tmp_path / "serve.db").exists()  # refused before anything was opened


def test_a_host_of_another_machine_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [*TRUSTUNE, "serve", str(tiny_run), "--host", "192.0.2.1", "--port", "8000"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot listen on 192.0.2.1:8000: not an address of this machine" in result.stderr
    assert "--host" in result.stderr and "serving on" not in result.stderr


def _wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


def test_sigterm_finishes_the_request_in_flight(tiny_run: Path, tmp_path: Path) -> None:
    from trustune.store import Store

    db = f"sqlite:///{tmp_path / 'serve.db'}"
    with Store.open(db) as store:
        key, secret = store.create_key(name="cli", role="predict")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*TRUSTUNE, "serve", str(tiny_run), "--port", str(port), "--db", db, "--graceful-timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "TRUSTUNE_DB": ""},
    )  # fmt: skip
    try:
        _wait_ready(url, process)
        texts = [f"a long request, text {i}, quite good" for i in range(2_000)]
        answer: dict[str, Any] = {}

        def call() -> None:
            r = httpx.post(
                f"{url}/v1/predict", json={"texts": texts}, headers=bearer(secret), timeout=120
            )
            answer["status"], answer["n"] = r.status_code, len(r.json()["predictions"])

        thread = threading.Thread(target=call)
        thread.start()
        while "trustune_in_flight 1.0" not in httpx.get(f"{url}/metrics").text:
            assert thread.is_alive(), answer
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        thread.join(120)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    assert answer == {"status": 200, "n": 2_000}
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    with Store.open(db) as store:
        entries = [e for e in store.audit_entries() if e.route == "POST /v1/predict"]
    assert [(e.key_id, e.status, e.n_texts) for e in entries] == [(key.id, 200, 2_000)]
