"""The API docs at /docs in a real headless browser: Swagger UI renders FastAPI's OpenAPI 3.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect, sync_playwright

import trustune
from test_serve_support import ThreadedServer
from trustune.serve import create_app
from trustune.store import Store

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def server(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('apidocs') / 'trustune.db'}")
    with ThreadedServer(create_app(trustune.load(tiny_run), store=store)) as running:
        yield running
    store.close()


@pytest.fixture(scope="module")
def page(server: ThreadedServer) -> Iterator[tuple[Any, list[str]]]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server.url + "/docs")
        yield page, requested
        browser.close()


def test_docs_render_the_operations(page: tuple[Any, list[str]]) -> None:
    docs, _ = page
    predict = docs.locator(".opblock-summary-path[data-path='/v1/predict']")
    expect(predict).to_be_visible(timeout=60_000)
    for path in ("/v1/explain", "/v1/model"):
        expect(docs.locator(f".opblock-summary-path[data-path='{path}']")).to_be_visible()
    assert "Unable to render" not in docs.inner_text("body")
    assert "OAS 3.1" in docs.inner_text(".information-container")


def test_docs_open_an_operation_with_its_schema(page: tuple[Any, list[str]]) -> None:
    docs, _ = page
    docs.click(".opblock-post .opblock-summary-path[data-path='/v1/predict']")
    body = docs.locator(".opblock-post.is-open .opblock-body")
    expect(body).to_contain_text("texts", timeout=30_000)  # the request body's schema
    expect(body.locator(".responses-table")).to_contain_text("200")


def test_docs_load_nothing_from_elsewhere(
    page: tuple[Any, list[str]], server: ThreadedServer
) -> None:
    docs, requested = page
    expect(docs.locator(".opblock").first).to_be_visible(timeout=60_000)
    assert requested and all(url.startswith(server.url) for url in requested)
    assert any(url.endswith("/openapi.json") for url in requested)
