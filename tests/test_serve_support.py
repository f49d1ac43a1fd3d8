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
