"""API-key authentication and authorization: ``Authorization: Bearer KEY`` checked per request.

401 for a missing, unknown, expired or revoked key; 403 for a key whose role does not allow the
route; 429 (with ``Retry-After``) when the key's token bucket is empty. A key's record is cached
for at most one second, so a revocation takes effect within that second on every replica.

Each 401 also takes a token from the bucket of the client's address; while that bucket is empty,
the address gets 429 before any key is looked up, so guessing keys costs the server nothing.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from trustune.errors import TrustuneError

if TYPE_CHECKING:
    from trustune.serve.state import ServerState
    from trustune.store import ApiKey, Role

__all__ = ["Authenticator", "KeyStore", "bearer_scheme", "require_role"]

bearer_scheme = HTTPBearer(
    auto_error=False, description="an API key from `trustune keys create`", scheme_name="ApiKey"
)


class KeyStore(Protocol):
    """What the server needs of :class:`trustune.store.Store`."""

    def authenticate(self, secret: str) -> ApiKey | None: ...

    def record(self, entries: Any) -> None: ...


class Authenticator:
    """Looks keys up in the store, caching each answer (also "unknown") for ``cache_s``."""

    def __init__(
        self, store: KeyStore, *, cache_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._cache_s = cache_s
        self._clock = clock
        # keyed by the SHA-256 of the secret: the secret itself is not kept
        self._cache: dict[bytes, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    async def lookup(self, secret: str) -> ApiKey | None:
        digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        record = await run_in_threadpool(self._store.authenticate, secret)
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: a flood of random keys cannot grow it
                self._cache.clear()
            self._cache[digest] = (now, record)
        return record


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _retry_after(wait: float) -> str:
    return "3600" if math.isinf(wait) else str(max(1, math.ceil(wait)))


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _address_over_limit(server: ServerState, wait: float) -> HTTPException:
    retry = _retry_after(wait)
    settings = server.settings
    return HTTPException(
        429,
        detail="too many requests without a valid API key from this address "
        f"({settings.address_rate_per_s:g}/s, burst {settings.address_burst}); "
        f"retry after {retry} s with a valid key",
        headers={"Retry-After": retry},
    )


def _check_address(server: ServerState, address: str) -> None:
    """429 while ``address`` has used up its allowance of requests without a valid key."""
    settings = server.settings
    wait = server.address_limiter.wait(
        address, rate_per_s=settings.address_rate_per_s, burst=settings.address_burst
    )
    if wait > 0:
        raise _address_over_limit(server, wait)


def _refused(server: ServerState, address: str, detail: str) -> HTTPException:
    """401 for a request without a valid key, charged to its address (429 once it has none)."""
    settings = server.settings
    wait = server.address_limiter.acquire(
        address, rate_per_s=settings.address_rate_per_s, burst=settings.address_burst
    )
    if wait > 0:
        return _address_over_limit(server, wait)
    return _unauthorized(detail)


def require_role(needed: Role) -> Callable[..., Awaitable[ApiKey | None]]:
    """A FastAPI dependency: the caller's key, which must be active and allow ``needed``."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # noqa: B008
    ) -> ApiKey | None:
        server: ServerState = request.app.state.trustune
        if not server.settings.auth:
            return None
        address = _address(request)
        _check_address(server, address)
        if credentials is None or not credentials.credentials:
            raise _refused(
                server, address, "missing API key: send the header `Authorization: Bearer KEY`"
            )
        assert server.authenticator is not None  # create_app: auth needs a store
        try:
            key = await server.authenticator.lookup(credentials.credentials)
        except TrustuneError as e:  # the key database is unreachable: not the caller's fault
            raise HTTPException(
                503, detail=f"cannot check API keys now ({type(e).__name__}); retry shortly",
                headers={"Retry-After": "1"},
            ) from None  # fmt: skip
        if key is None:
            raise _refused(
                server, address, "unknown API key; create one with `trustune keys create`"
            )
        request.state.key_id = key.id
        now = datetime.now(UTC)
        if key.revoked_at is not None:
            raise _refused(server, address, f"API key {key.id} was revoked; ask for a new key")
        if not key.active(now):
            raise _refused(server, address, f"API key {key.id} has expired; ask for a new key")
        if not key.role.allows(needed):
            raise HTTPException(
                403,
                detail=f"API key {key.id} has role {key.role.value}; "
                f"{request.url.path} needs role {needed.value}",
            )
        wait = server.rate_limiter.acquire(key.id, rate_per_s=key.rate_per_s, burst=key.burst)
        if wait > 0:
            retry = _retry_after(wait)
            raise HTTPException(
                429,
                detail=f"API key {key.id} is over its rate limit ({key.rate_per_s:g} requests/s, "
                f"burst {key.burst}); retry after {retry} s",
                headers={"Retry-After": retry},
            )
        return key

    return dependency
