"""Slow, stalled and vanishing clients against uvicorn on a loopback port (raw sockets): they hold
a slot of the concurrency limit, are timed out with 408, have their model work dropped when they
disconnect, and every such answer is audited."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx

import trustune
from test_serve_support import (
    ThreadedServer,
    bearer,
    make_store,
    metric,
    raw_upload,
    read_until_closed,
    wait_until,
)
from trustune.serve import ServeSettings, create_app

PARTIAL = b'{"texts": ["' + b"x" * 100  # the start of a body that promised 1,000 bytes


@pytest.fixture(scope="module")
def classifier(tiny_run: Path) -> Any:
    return trustune.load(tiny_run)


def _in_flight(url: str) -> float:
    return metric(httpx.get(f"{url}/metrics", timeout=30).text, "trustune_in_flight")


def _audited(store: Any, route: str = "POST /v1/predict") -> Counter[int]:
    return Counter(e.status for e in store.audit_entries() if e.route == route)


def test_stalled_uploads_hold_slots_of_the_concurrency_limit(
    classifier: Any, tmp_path: Path
) -> None:
    store, keys = make_store(tmp_path / "t.db")
    settings = ServeSettings(max_concurrency=3, body_timeout_s=300)  # no timeout in this test
    app = create_app(classifier, settings=settings, store=store)
    with ThreadedServer(app) as server:
        stalled = [
            raw_upload(server.port, path="/v1/predict", declared=1000, sent=PARTIAL, key=keys.bulk)
            for _ in range(3)
        ]
        try:
            wait_until(lambda: _in_flight(server.url) == 3, what="three stalled uploads in flight")
            busy = httpx.post(
                f"{server.url}/v1/predict", json={"texts": ["x"]}, headers=bearer(keys.bulk),
                timeout=30,
            )  # fmt: skip
        finally:
            for connection in stalled:
                connection.close()
        wait_until(lambda: _in_flight(server.url) == 0, what="the slots to be freed")
        ok = httpx.post(
            f"{server.url}/v1/predict", json={"texts": ["x"]}, headers=bearer(keys.bulk), timeout=30
        )
    assert busy.status_code == 503
    assert ok.status_code == 200
    audited = _audited(store)
    assert (audited[503], audited[499], audited[200]) == (1, 3, 1)  # 499: they went away
    store.close()


def test_a_stalled_upload_is_answered_408_and_closed(classifier: Any, tmp_path: Path) -> None:
    store, keys = make_store(tmp_path / "t.db")
    settings = ServeSettings(body_timeout_s=0.5, max_body_bytes=2_000)
    app = create_app(classifier, settings=settings, store=store)
    with ThreadedServer(app) as server:
        connection = raw_upload(
            server.port, path="/v1/predict", declared=1000, sent=PARTIAL, key=keys.bulk
        )
        try:
            answer, closed = read_until_closed(connection)
        finally:
            connection.close()
        too_large = httpx.post(
            f"{server.url}/v1/predict", content=b"x" * 3_000, headers=bearer(keys.bulk),
            timeout=30,
        )  # fmt: skip
        page = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"did not arrive within 0.5 s" in answer
    assert closed
    assert too_large.status_code == 413
    for status in (408, 413):
        assert (
            metric(page, f'trustune_requests_total{{route="/v1/predict",status="{status}"}}') == 1
        )
    audited = _audited(store)
    assert (audited[408], audited[413]) == (1, 1)
    store.close()


def test_a_client_that_disconnects_has_its_model_work_dropped(
    classifier: Any, tmp_path: Path
) -> None:
    store, keys = make_store(tmp_path / "t.db")
    app = create_app(classifier, settings=ServeSettings(), store=store)
    state = app.state.trustune
    stats = state.batcher.stats
    body = json.dumps({"texts": ["never computed"] * 100}).encode()
    with ThreadedServer(app) as server:
        release, holding = threading.Event(), threading.Event()

        def hold() -> None:
            holding.set()
            release.wait(60)

        state.batcher.run(hold)  # the model thread is busy: the request has to queue
        try:
            assert holding.wait(30)
            connection = raw_upload(
                server.port, path="/v1/predict", declared=len(body), sent=body, key=keys.bulk
            )
            try:
                wait_until(lambda: state.in_flight.count("/v1/predict") == 1, what="its body in")
            finally:
                connection.close()
            wait_until(lambda: state.in_flight.total == 0, what="the request to end")
            batches = stats.batches
        finally:
            release.set()
        wait_until(lambda: stats.cancelled == 1, what="the queued work to be dropped")
        assert stats.batches == batches  # the model never saw its texts
    assert _audited(store)[499] == 1
    store.close()
