"""Every request counted in the metrics and written to the audit log (never its raw text, unless
the server runs with ``log_texts``).

This is the outermost middleware, so the answers of the limits inside it (413, 408, 503) are
recorded like any other; a client that went away before its answer is recorded as 499.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from trustune.serve.state import ServerState

__all__ = ["CLIENT_GONE", "RecordRequestsMiddleware"]

Scope = dict[str, Any]
Message = dict[str, Any]
CLIENT_GONE = 499  # the client disconnected before it was answered (nginx's convention)
_UNMATCHED = "<unmatched>"  # a path no route serves (kept out of the metrics' label values)


class RecordRequestsMiddleware:
    """ASGI middleware around the app: status, latency, key id and number of texts per request.

    Routes put ``key_id``, ``n_texts`` and ``texts`` into ``request.state`` (the ``state`` of
    the scope); they are read here once the response is sent. ``paths`` are the app's routes: a
    request refused before routing (413, 408, 503) is recorded under its path if it is one of them.
    """

    def __init__(self, app: Any, *, server: ServerState, paths: frozenset[str]) -> None:
        self.app = app
        self.server = server
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        gone = False
        state: dict[str, Any] = scope.setdefault("state", {})

        async def receive_watched() -> Message:
            nonlocal gone
            message: Message = await receive()
            if message["type"] == "http.disconnect" and status is None:
                gone = True
            return message

        async def send_recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive_watched, send_recorded)
        finally:
            if status is None:  # no answer: the client left, or an exception escaped the app
                status = CLIENT_GONE if gone else 500
            self._record(scope, state, status, time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        route = getattr(scope.get("route"), "path", None)
        if route is not None:
            return str(route)
        path = scope.get("path", "")
        return path if path in self.paths else _UNMATCHED

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        route = self._route(scope)
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
