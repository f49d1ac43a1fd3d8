"""The web console at ``/``: paste an API key and a text, see the label, the probabilities as bars
and the explanation as a heat map of the words. Plain HTML, CSS and JS from this package, nothing
loaded from elsewhere (the page's Content-Security-Policy allows this origin only)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

__all__ = ["CONSOLE_FILES", "console_router"]

CONSOLE_FILES = {
    "console.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

console_router = APIRouter(include_in_schema=False)


@cache
def _read(name: str) -> bytes:
    return (resources.files("trustune.serve") / "static" / name).read_bytes()


def _file(name: str) -> Response:
    return Response(_read(name), media_type=CONSOLE_FILES[name], headers=_HEADERS)


@console_router.get("/")
async def console_page() -> Response:
    return _file("console.html")


@console_router.get("/console/console.js")
async def console_script() -> Response:
    return _file("console.js")


@console_router.get("/console/console.css")
async def console_style() -> Response:
    return _file("console.css")
