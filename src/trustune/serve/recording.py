"""Every request counted in the metrics and written to the audit log (never its raw text, unless
the server runs with ``log_texts``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from trustune.serve.state import ServerState

__all__ = ["RecordRequestsMiddleware"]

Scope = dict[str, Any]
_UNMATCHED = "<unmatched>"  # a path no route serves (kept out of the metrics' label values)


class RecordRequestsMiddleware:
    """ASGI middleware around the app: status, latency, key id and number of texts per request.

    Routes put ``key_id``, ``n_texts`` and ``texts`` into ``request.state`` (the ``state`` of
    the scope); they are read here once the response is sent.
    """

    def __init__(self, app: Any, *, server: ServerState) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped the app
        state: dict[str, Any] = scope.setdefault("state", {})
        in_api = scope.get("path", "").startswith("/v1/")
        if in_api:
            self.server.metrics.in_flight.inc()

        async def send_recorded(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        finally:
            if in_api:
                self.server.metrics.in_flight.dec()
            self._record(scope, state, status, time.perf_counter() - started)

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or _UNMATCHED
        n_texts = int(state.get("n_texts", 0))
        metrics = self.server.metrics
        metrics.requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(seconds)
        if n_texts and status < 400:
            metrics.texts.labels(route).inc(n_texts)
        if self.server.audit is None:
            return
        from trustune.store import AuditEntry

        texts = state.get("texts") if self.server.settings.log_texts else None
        self.server.audit.add(
            AuditEntry(
                time=datetime.now(UTC),
                key_id=state.get("key_id"),
                route=f"{scope.get('method', '')} {route}".strip(),
                status=status,
                latency_ms=round(seconds * 1000.0, 3),
                n_texts=n_texts,
                text=None if texts is None else json.dumps(texts, ensure_ascii=False),
            )
        )
