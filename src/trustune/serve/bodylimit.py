"""A request body size limit that also holds for chunked bodies sent without Content-Length."""

from __future__ import annotations

from typing import Any

from trustune.serve.responses import send_json_error

__all__ = ["BodyLimitMiddleware"]

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimitMiddleware:
    """ASGI middleware: read the body (at most ``limit`` bytes) before the app sees it, else 413.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body without
    one is counted as it arrives and refused as soon as it passes the limit, so no more than
    ``limit`` bytes are ever held per request.
    """

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._too_large(send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(send, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            result: Message = await receive()  # after the body: waits for the disconnect
            return result

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else "more"
        await send_json_error(
            send, 413,
            f"request body too large ({size}; the limit is {self.limit} bytes): "
            "send fewer or shorter texts per request",
            headers=[(b"connection", b"close")],
        )  # fmt: skip


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
