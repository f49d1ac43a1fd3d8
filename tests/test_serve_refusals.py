"""Refused requests through the app (httpx TestClient, real SQLite store): every answer audited and
counted, validation errors that never echo the input, per-address limits without a valid key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

import trustune
from test_serve_support import Keys, bearer, make_store, wait_until
from trustune.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def classifier(tiny_run: Path) -> Any:
    return trustune.load(tiny_run)


@pytest.fixture(scope="module")
def store_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Keys]]:
    store, keys = make_store(tmp_path_factory.mktemp("refusals") / "trustune.db")
    yield store, keys
    store.close()


def test_every_answer_is_audited_and_counted(classifier: Any, tmp_path: Path) -> None:
    store, keys = make_store(tmp_path / "audit.db")
    settings = ServeSettings(max_concurrency=1, max_body_bytes=2_000)
    app = create_app(classifier, settings=settings, store=store)
    server = app.state.trustune
    statuses: dict[int, int] = {}
    with TestClient(app) as c:

        def predict(key: str | None, **kwargs: Any) -> int:
            kwargs.setdefault("json", {"texts": ["a fine film"]})
            headers = {"Content-Type": "application/json", **(bearer(key) if key else {})}
            return c.post("/v1/predict", headers=headers, **kwargs).status_code

        statuses[200] = predict(keys.predict)
        statuses[401] = predict(None)
        statuses[403] = c.post(
            "/v1/explain", json={"texts": ["x"]}, headers=bearer(keys.predict)
        ).status_code
        statuses[413] = predict(keys.predict, json=None, content=b'{"texts": ["' + b"x" * 3000)
        statuses[422] = predict(keys.predict, json={"texts": "not a list"})
        statuses[429] = [predict(keys.limited) for _ in range(3)][-1]
        release = threading.Event()
        server.batcher.run(lambda: release.wait(30))  # the one slot stays taken until released
        held: dict[str, int] = {}
        holder = threading.Thread(target=lambda: held.update(status=predict(keys.admin)))
        holder.start()
        try:
            wait_until(lambda: server.in_flight.total == 1, what="the first request in flight")
            statuses[503] = predict(keys.admin)
        finally:
            release.set()
            holder.join(30)
        metrics = c.get("/metrics").text
    assert statuses == {s: s for s in statuses}
    assert held["status"] == 200
    audited = {(e.route, e.status) for e in store.audit_entries()}
    for status in (200, 401, 413, 422, 429, 503):
        assert ("POST /v1/predict", status) in audited
        assert f'trustune_requests_total{{route="/v1/predict",status="{status}"}}' in metrics
    assert ("POST /v1/explain", 403) in audited
    store.close()


def test_validation_errors_never_echo_the_input(
    classifier: Any, store_keys: tuple[Any, Keys]
) -> None:
    store, keys = store_keys
    huge = "m" * 500_000  # a body under the 1 MiB limit
    cases = [
        ("/v1/explain", {"texts": ["x"], "method": huge}, ["body", "method"]),
        ("/v1/explain", {"texts": ["x"], "target": huge}, ["body", "target"]),
        ("/v1/predict", {"texts": ["x"], huge: 1}, ["body", "<key>"]),
        ("/v1/predict", {"texts": [huge[:5000] + "\ud800"]}, ["body", "texts"]),
    ]
    with TestClient(create_app(classifier, store=store)) as c:
        for path, body, loc in cases:
            response = c.post(
                path, content=json.dumps(body).encode(),  # ASCII JSON: a lone surrogate is sent
                headers={**bearer(keys.explain), "Content-Type": "application/json"},
            )  # fmt: skip
            assert response.status_code == 422, response.text[:200]
            assert "mmmm" not in response.text
            assert len(response.content) < 2_000
            first = response.json()["detail"][0]
            assert first["loc"][: len(loc)] == loc and first["msg"]
        blanks = c.post("/v1/predict", json={"texts": [" "] * 5000}, headers=bearer(keys.explain))
    assert blanks.status_code == 422
    problems = blanks.json()["detail"]
    assert 1 <= len(problems) <= 10  # not 5,000 entries
    assert problems[0]["loc"] == ["body", "texts", 0]


def test_requests_without_a_valid_key_are_limited_per_address(
    classifier: Any, store_keys: tuple[Any, Keys]
) -> None:
    store, keys = store_keys
    settings = ServeSettings(address_rate_per_s=0.001, address_burst=3)  # no refill in the test
    app = create_app(classifier, settings=settings, store=store)
    guess = bearer("tt_guessed-key-number-one")
    with TestClient(app) as c:
        first = [c.post("/v1/predict", json={"texts": ["x"]}, headers=guess) for _ in range(3)]
        over = c.post("/v1/predict", json={"texts": ["x"]}, headers=guess)
        missing = c.post("/v1/predict", json={"texts": ["x"]})
        # while the address is over its allowance, no key is even looked up
        valid = c.post("/v1/predict", json={"texts": ["x"]}, headers=bearer(keys.predict))
        elsewhere = TestClient(app, client=("10.1.2.3", 5000))  # another address, same app
        other = elsewhere.post("/v1/predict", json={"texts": ["x"]}, headers=guess)
    assert [r.status_code for r in first] == [401, 401, 401]
    assert over.status_code == 429 and missing.status_code == 429 and valid.status_code == 429
    assert int(over.headers["retry-after"]) >= 1
    assert "without a valid API key from this address" in over.json()["detail"]
    assert other.status_code == 401
    refused = [e for e in store.audit_entries() if e.status == 429 and e.key_id is None]
    assert len(refused) >= 3


def test_a_valid_key_is_not_charged_to_its_address(
    classifier: Any, store_keys: tuple[Any, Keys]
) -> None:
    store, keys = store_keys
    settings = ServeSettings(address_rate_per_s=0.001, address_burst=1)
    with TestClient(create_app(classifier, settings=settings, store=store)) as c:
        ok = [
            c.post("/v1/predict", json={"texts": ["x"]}, headers=bearer(keys.bulk)).status_code
            for _ in range(5)
        ]
        unknown = c.post("/v1/predict", json={"texts": ["x"]}, headers=bearer("tt_nope"))
    assert ok == [200] * 5
    assert unknown.status_code == 401  # its one allowance was still there
