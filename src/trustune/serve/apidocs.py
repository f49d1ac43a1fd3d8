"""The interactive API docs at ``/docs`` (Swagger UI) served from this machine, not from a CDN.

The Swagger UI files (5.x, which reads the OpenAPI 3.1 that FastAPI writes) come from the
``fastapi-offline`` package, so the page works offline like the web console does.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from trustune.errors import ConfigError

__all__ = ["ASSETS_PATH", "add_api_docs", "swagger_ui_folder"]

ASSETS_PATH = "/docs-assets"
_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def swagger_ui_folder() -> Path:
    """The folder of the bundled Swagger UI files; a clear error when the package is missing."""
    try:
        folder = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        raise ConfigError(
            "the /docs page needs the fastapi-offline package: pip install 'trustune[serve]'"
        ) from None
    missing = [name for name in _ASSETS if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"the fastapi-offline package lacks {', '.join(missing)} in {folder}; reinstall it "
            "with pip install --force-reinstall fastapi-offline"
        )
    return folder


def add_api_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI at ``/docs`` over ``app.openapi_url`` with locally bundled assets."""
    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_folder()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        )

    app.add_api_route("/docs", swagger_ui, include_in_schema=False, methods=["GET"])
