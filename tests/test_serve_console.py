"""The web console in a real headless browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect, sync_playwright

import trustune
from test_serve_support import Keys, ThreadedServer, make_store
from trustune.serve import create_app

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def console(
    tiny_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ThreadedServer, Keys, Any]]:
    classifier = trustune.load(tiny_run)
    store, keys = make_store(tmp_path_factory.mktemp("console") / "trustune.db")
    with ThreadedServer(create_app(classifier, store=store)) as server:
        yield server, keys, classifier
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def _classify(page: Any, server: ThreadedServer, key: str, text: str) -> None:
    page.goto(server.url + "/")
    page.fill("#key", key)
    page.fill("#text", text)
    page.click("#submit")
    # polled from Python: a predicate string would be eval'd in the page, which its CSP forbids
    expect(page.locator("#status")).to_have_text(re.compile(r"^(done|\d{3}: .*)$"), timeout=60_000)


def test_console_shows_label_bars_and_heat_map(
    console: tuple[ThreadedServer, Keys, Any], browser: Any
) -> None:
    server, keys, classifier = console
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    text = "a gripping, funny and moving film"
    _classify(page, server, keys.explain, text)
    assert page.text_content("#status") == "done"
    want = classifier.predict([text])[0]
    assert page.text_content("#label") == str(want.label)
    bars = page.query_selector_all(".bar-row")
    assert sorted(b.get_attribute("data-label") for b in bars) == sorted(want.probabilities)
    widths = page.eval_on_selector_all(".bar", "bars => bars.map(b => b.style.width)")
    assert all(w.endswith("%") for w in widths)
    words = page.query_selector_all("#heatmap .word")
    assert [w.text_content() for w in words] == [
        "a",
        "gripping",
        ",",
        "funny",
        "and",
        "moving",
        "film",
    ]
    assert page.text_content("#heatmap") == text  # the words in place, spaces kept
    colours = page.eval_on_selector_all(
        "#heatmap .word", "ws => ws.map(w => getComputedStyle(w).backgroundColor)"
    )
    assert any(c.startswith("rgba(0, 150, 70") or c.startswith("rgba(210, 30, 40") for c in colours)
    assert all(url.startswith(server.url) for url in requested)  # nothing from elsewhere
    page.close()


def test_console_reports_a_key_without_explain_role(
    console: tuple[ThreadedServer, Keys, Any], browser: Any
) -> None:
    server, keys, _ = console
    page = browser.new_page()
    _classify(page, server, keys.predict, "fine")
    assert page.text_content("#label")  # the prediction is shown
    assert page.text_content("#status").startswith("403:")
    page.close()


def test_console_reports_a_bad_key(console: tuple[ThreadedServer, Keys, Any], browser: Any) -> None:
    server, _, _ = console
    page = browser.new_page()
    _classify(page, server, "tt_wrong", "fine")
    assert page.text_content("#status").startswith("401:")
    assert page.is_hidden("#result")
    page.close()
