"""A global limit on requests in flight: past it the server answers 503 instead of queueing
without bound (and running out of memory).

A request counts from the moment its headers have arrived, so a client still sending its body
(or stalling) holds a slot like any other; the body read timeout frees it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from trustune.serve.responses import send_json_error

__all__ = ["OPERATIONS_PATHS", "ConcurrencyLimitMiddleware", "InFlight"]

Scope = dict[str, Any]
Message = dict[str, Any]

# Routes that must answer while the server is saturated (probes, metrics): never limited.
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class InFlight:
    """How many requests are being handled now: in total, and per path once their body is in.

    ``total`` counts every admitted request, bodies still arriving included (the limit). The
    micro-batcher reads :meth:`count` of ``/v1/predict`` to know whether more requests are on their
    way (and worth waiting for): only those whose body has arrived, so a stalled upload does not
    make every batch wait.
    """

    def __init__(self) -> None:
        self.total = 0
        self.by_path: Counter[str] = Counter()

    def count(self, path: str) -> int:
        return self.by_path[path]

    def release(self, path: str) -> None:
        """A request to ``path`` whose body had arrived is done."""
        self.by_path[path] -= 1
        if self.by_path[path] <= 0:
            del self.by_path[path]  # random paths must not grow the counter


class ConcurrencyLimitMiddleware:
    """ASGI middleware: at most ``limit`` requests at once (operations routes exempt), 503 beyond."""

    def __init__(
        self, app: Any, *, limit: int, in_flight: InFlight,
        exempt: frozenset[str] = OPERATIONS_PATHS,
    ) -> None:  # fmt: skip
        self.app = app
        self.limit = limit
        self.in_flight = in_flight
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight.total >= self.limit:
            await send_json_error(
                send, 503, f"the server is busy ({self.limit} requests in flight); retry shortly",
                headers=[(b"retry-after", b"1")],
            )  # fmt: skip
            return
        # The event loop runs one coroutine at a time: no lock needed around these counters.
        self.in_flight.total += 1
        body_in = False

        async def receive_counted() -> Message:
            nonlocal body_in
            message: Message = await receive()
            if not body_in and message["type"] == "http.request" and not message.get("more_body"):
                body_in = True
                self.in_flight.by_path[path] += 1
            return message

        try:
            await self.app(scope, receive_counted, send)
        finally:
            self.in_flight.total -= 1
            if body_in:
                self.in_flight.release(path)
