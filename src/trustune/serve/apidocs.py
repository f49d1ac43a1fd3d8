"""The interactive API docs at ``/docs`` (Swagger UI) served from this machine, not from a CDN.

The Swagger UI files come from the ``swagger-ui-bundle`` package, so the page works offline
like the web console does.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "add_api_docs"]

ASSETS_PATH = "/docs-assets"


def add_api_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI at ``/docs`` over ``app.openapi_url`` with locally bundled assets."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )

    app.add_api_route("/docs", swagger_ui, include_in_schema=False, methods=["GET"])
