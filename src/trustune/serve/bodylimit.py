"""A request body size limit that also holds for chunked bodies sent without Content-Length, and a
deadline for the whole body to arrive (slow or stalled uploads are answered 408)."""

from __future__ import annotations

import asyncio
from typing import Any

from trustune.serve.responses import send_json_error

__all__ = ["BodyLimitMiddleware"]

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimitMiddleware:
    """ASGI middleware: read the body (at most ``limit`` bytes, within ``timeout_s``) before the app
    sees it; 413 when it is too large, 408 when it is too slow.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body without
    one is counted as it arrives and refused as soon as it passes the limit, so no more than
    ``limit`` bytes are ever held per request. Both refusals close the connection.
    """

    def __init__(self, app: Any, *, limit: int, timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

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
        outcome = "complete"
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # nobody to answer; the recording middleware notes the 499
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        outcome = "too large"
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            outcome = "too slow"
        if outcome != "complete":
            chunks.clear()
            if outcome == "too large":
                await self._too_large(send, None)
                return
            await send_json_error(
                send, 408,
                f"the request body did not arrive within {self.timeout_s:g} s "
                f"({size} bytes came): send it faster, or send less per request",
                headers=[(b"connection", b"close")],
            )  # fmt: skip
            return
        body = b"".join(chunks)
        chunks.clear()
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
