"""The settings of one server: where it listens, how it batches, and the limits it enforces."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any

from trustune.errors import ConfigError

__all__ = ["LOOPBACK_HOSTS", "ServeSettings", "is_loopback"]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``trustune serve`` can be told; validated when built."""

    host: str = "127.0.0.1"
    port: int = 8000
    db_url: str | None = None  # None: trustune.store.default_db_url()
    auth: bool = True  # False only on a loopback host (--no-auth)
    workers: int = 1  # server processes, each with its own model copy
    max_batch: int = 32  # texts per forward pass of the micro-batcher
    max_wait_ms: float = 5.0  # how long a batch waits for more requests that are on their way
    max_body_bytes: int = 1024 * 1024  # 413 above this, with or without Content-Length
    max_texts: int = 10_000  # texts per predict request (422 above)
    max_chars: int = 10_000  # characters per text (422 above)
    max_explain_texts: int = 16  # texts per explain request (422 above)
    max_concurrency: int = 256  # requests in flight at once, bodies still arriving too (503 above)
    body_timeout_s: float = 10.0  # a request body must arrive within this (408 after)
    address_rate_per_s: float = 2.0  # requests without a valid key: refill per client address
    address_burst: int = 20  # ... and how many in a row (429 beyond)
    log_texts: bool = False  # keep the raw texts in the audit log (off: never stored)
    audit_flush_ms: float = 200.0  # the audit writer batches entries for this long
    audit_retry_s: float = 30.0  # a failing audit write is retried (with backoff) this long
    graceful_timeout_s: float = 30.0  # SIGTERM: in-flight requests get this long to finish
    threads: int | None = None  # torch threads of the forward pass (None: torch's default)

    def __post_init__(self) -> None:
        positive = (
            "port", "workers", "max_batch", "max_body_bytes", "max_texts", "max_chars",
            "max_explain_texts", "max_concurrency", "address_burst",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: {value!r} is not allowed, it must be an integer > 0")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(
                f"threads: {self.threads!r} is not allowed, it must be an integer > 0"
            )
        if self.port > 65535:
            raise ConfigError(f"port: {self.port} is not allowed, it must be 1-65535")
        for name in ("max_wait_ms", "audit_flush_ms", "graceful_timeout_s", "audit_retry_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: {getattr(self, name)} is not allowed, it must be >= 0")
        for name in ("body_timeout_s", "address_rate_per_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: {getattr(self, name)} is not allowed, it must be > 0")
        if not self.auth and not is_loopback(self.host):
            raise ConfigError(
                f"--no-auth with --host {self.host}: a server without API keys may only listen on "
                "127.0.0.1 (or ::1); drop --no-auth, or use --host 127.0.0.1"
            )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServeSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown serve setting(s) {unknown}. Allowed: {sorted(known)}")
        return cls(**data)
