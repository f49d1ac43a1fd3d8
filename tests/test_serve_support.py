"""Helpers shared by the tests of ``trustune serve`` (no tests here): a store with one key of each
kind, and uvicorn serving an app on a free loopback port in a thread."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")


@dataclass
class Keys:
    predict: str
    explain: str
    admin: str
    expired: str
    revoked: str
    limited: str  # burst 2, then one request every 1000 s
    bulk: str  # admin, practically no rate limit (load tests, fuzzing)
    revoked_id: str


def make_store(path: Path) -> tuple[Any, Keys]:
    from trustune.store import Store

    store = Store.open(f"sqlite:///{path}")
    secrets = {}
    for role in ("predict", "explain", "admin"):
        secrets[role] = store.create_key(name=role, role=role)[1]
    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    secrets["expired"] = store.create_key(name="expired", role="admin", expires_at=soon)[1]
    revoked, secrets["revoked"] = store.create_key(name="revoked", role="admin")
    store.revoke_key(revoked.id)
    secrets["limited"] = store.create_key(
        name="limited", role="predict", rate_per_s=0.001, burst=2
    )[1]
    secrets["bulk"] = store.create_key(name="bulk", role="admin", rate_per_s=1e6, burst=10**6)[1]
    while datetime.now(UTC) <= soon:  # until the expired key has expired
        time.sleep(0.05)
    return store, Keys(**secrets, revoked_id=revoked.id)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThreadedServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread, for the length of a ``with`` block."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def wait_until(condition: Any, *, timeout_s: float = 30.0, what: str = "the condition") -> None:
    """Poll ``condition()`` until it is true; fail after ``timeout_s`` (a bound, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s} s")
        time.sleep(0.02)


def metric(text: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels, if any) in a /metrics page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def raw_upload(
    port: int, *, path: str, declared: int, sent: bytes, key: str | None
) -> socket.socket:
    """A POST whose headers promise ``declared`` body bytes, of which only ``sent`` are sent."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(head.encode() + sent)
    return connection


def read_until_closed(connection: socket.socket, *, limit: int = 1 << 16) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection (at most ``limit`` bytes, 30 s)."""
    data = b""
    connection.settimeout(30)
    for _ in range(1000):
        chunk = connection.recv(4096)
        if not chunk:
            return data, True
        data += chunk
        if len(data) > limit:
            break
    return data, False
