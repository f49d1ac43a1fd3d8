"""Error answers sent by the ASGI middlewares, before FastAPI sees the request."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["send_json_error"]


async def send_json_error(
    send: Any, status: int, detail: str, *, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``{"detail": ...}`` with ``status`` (the shape FastAPI uses for its own errors)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
