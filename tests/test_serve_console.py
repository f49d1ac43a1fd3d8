"""The web console in a real headless browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect, sync_playwright

import trustune
from test_serve_support import Keys, ThreadedServer, bearer, make_store
from trustune.artifact import read_metrics
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


def _classify(page: Any, server: ThreadedServer, key: str, text: str, *, goto: bool = True) -> None:
    if goto:
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


LONG_TEXT = " ".join(["a good film and a fine story"] * 40)  # about 280 tokens, past max_length


def test_a_failed_request_clears_the_previous_result(
    console: tuple[ThreadedServer, Keys, Any], browser: Any
) -> None:
    server, keys, _ = console
    page = browser.new_page()
    page.goto(server.url + "/")
    page.uncheck("#explain")
    _classify(page, server, keys.predict, LONG_TEXT, goto=False)
    assert page.text_content("#status") == "done"
    assert page.is_visible("#bars .bar-row") and page.is_visible("#cut-note")
    _classify(page, server, "tt_wrong", "fine", goto=False)  # same page: a 401 from /v1/predict
    assert page.text_content("#status").startswith("401:")
    assert page.is_hidden("#result") and page.is_hidden("#facts")
    assert page.query_selector_all(".bar-row") == []
    assert page.text_content("#label") == "" and page.is_hidden("#cut-note")
    page.close()


def test_api_says_where_a_long_text_was_cut(console: tuple[ThreadedServer, Keys, Any]) -> None:
    server, keys, classifier = console
    texts = [LONG_TEXT, "fine"]
    headers = bearer(keys.predict)
    response = httpx.post(server.url + "/v1/predict", json={"texts": texts}, headers=headers)
    long, short = response.json()["predictions"]
    assert (short["truncated"], short["cut_at"]) == (False, None)
    assert long["truncated"] is True and 0 < long["cut_at"] < len(LONG_TEXT)
    read = LONG_TEXT[: long["cut_at"]]
    assert len(classifier.tokenizer(read)["input_ids"]) == classifier.max_length  # all it read
    info = httpx.get(server.url + "/v1/model", headers=headers).json()
    assert info["max_length"] == classifier.max_length


def test_console_marks_where_a_long_text_was_cut(
    console: tuple[ThreadedServer, Keys, Any], browser: Any
) -> None:
    server, keys, classifier = console
    page = browser.new_page()
    page.goto(server.url + "/")
    page.uncheck("#explain")
    _classify(page, server, keys.explain, LONG_TEXT, goto=False)  # the text, struck through
    note = f"the model read the first {classifier.max_length} tokens; the rest was ignored"
    assert note in page.text_content("#cut-note")
    ignored = page.text_content("#heatmap .ignored")
    cut_at = len(LONG_TEXT) - len(ignored)
    assert ignored and LONG_TEXT[cut_at:] == ignored
    assert page.text_content("#heatmap") == LONG_TEXT[:cut_at] + "\u2702 cut" + ignored
    page.check("#explain")
    _classify(page, server, keys.explain, LONG_TEXT, goto=False)  # the heat map, cut
    assert page.text_content("#status") == "done"
    words = page.query_selector_all("#heatmap .word")
    assert 0 < len(words) < len(LONG_TEXT.split())
    assert page.text_content("#heatmap .ignored") == ignored  # the marker after the last word
    marker = page.locator("#heatmap .cut-marker")
    expect(marker).to_be_visible()
    assert marker.evaluate("m => m.previousElementSibling.className") == "word"
    assert re.search(r"\(\d+ words\)\.$", page.text_content("#cut-note"))
    _classify(page, server, keys.explain, "fine", goto=False)  # a short text: no marker
    assert page.is_hidden("#cut-note") and page.query_selector("#heatmap .cut-marker") is None
    page.close()


def test_console_shows_the_model_facts(
    console: tuple[ThreadedServer, Keys, Any], browser: Any
) -> None:
    server, keys, classifier = console
    page = browser.new_page()
    page.goto(server.url + "/")
    assert page.is_hidden("#facts")
    page.uncheck("#explain")
    _classify(page, server, keys.predict, "fine", goto=False)
    facts = {
        d.get_attribute("data-fact"): d.text_content() for d in page.query_selector_all("#facts dd")
    }
    validation = read_metrics(classifier.run_dir)["validation"]
    assert facts["labels"] == ", ".join(str(label) for label in classifier.labels)
    assert facts["accuracy"] == f"{100 * validation['accuracy']:.1f}%"
    assert facts["run"] == classifier.run_dir.name
    assert facts["created"] == classifier.manifest.created
    assert facts["epsilon"].startswith("no")  # the tiny run was not trained privately
    assert facts["max_length"].startswith(f"{classifier.max_length} tokens")
    page.close()
