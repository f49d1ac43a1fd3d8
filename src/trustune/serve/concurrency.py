"""A global limit on requests in flight: past it the server answers 503 instead of queueing
without bound (and running out of memory)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trustune.serve.responses import send_json_error

__all__ = ["ConcurrencyLimitMiddleware", "InFlight"]

Scope = dict[str, Any]


class InFlight:
    """How many API requests are being handled now, in total and per path.

    The micro-batcher reads the count of ``/v1/predict`` to know whether more requests are on their
    way (and worth waiting for) or whether it should run the batch it has.
    """

    def __init__(self) -> None:
        self.total = 0
        self.by_path: Counter[str] = Counter()

    def count(self, path: str) -> int:
        return self.by_path[path]


class ConcurrencyLimitMiddleware:
    """ASGI middleware: at most ``limit`` requests under ``prefix`` at once, 503 beyond."""

    def __init__(self, app: Any, *, limit: int, in_flight: InFlight, prefix: str = "/v1/") -> None:
        self.app = app
        self.limit = limit
        self.in_flight = in_flight
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.prefix):
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
        self.in_flight.by_path[path] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.total -= 1
            self.in_flight.by_path[path] -= 1
