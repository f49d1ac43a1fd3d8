"""The service on a real loopback socket (uvicorn in a thread): a bounded load test and
property-based fuzzing from its own OpenAPI schema (schemathesis)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("schemathesis")

import httpx

import trustune
from test_serve_support import Keys, ThreadedServer, bearer, make_store
from trustune.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def classifier(tiny_run: Path) -> Any:
    return trustune.load(tiny_run)


@pytest.fixture(scope="module")
def live(
    classifier: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ThreadedServer, Keys, Any]]:
    store, keys = make_store(tmp_path_factory.mktemp("serve-http") / "trustune.db")
    settings = ServeSettings(max_batch=16, max_wait_ms=5, max_explain_texts=2, max_chars=300)
    app = create_app(classifier, settings=settings, store=store)
    with ThreadedServer(app) as server:
        yield server, keys, app
    store.close()


def test_load_no_request_lost_or_duplicated(
    live: tuple[ThreadedServer, Keys, Any], classifier: Any
) -> None:
    server, keys, app = live
    clients, per_client = 16, 12
    results: dict[tuple[int, int], list[dict[str, Any]]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(base_url=server.url, headers=bearer(keys.bulk), timeout=60) as http:
            for r in range(per_client):
                n = 1 + (c + r) % 3  # 1-3 texts per request, of different lengths
                texts = [f"client {c} request {r} text {i} " + "good " * (c % 5) for i in range(n)]
                response = http.post("/v1/predict", json={"texts": texts})
                with lock:
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text}")
                    else:
                        results[(c, r)] = [{"texts": texts}, *response.json()["predictions"]]

    stats = app.state.trustune.batcher.stats
    before = stats.requests
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(results) == clients * per_client
    assert stats.requests - before == clients * per_client  # each request computed exactly once
    for texts_and_predictions in results.values():
        texts, got = texts_and_predictions[0]["texts"], texts_and_predictions[1:]
        want = classifier.predict(texts)  # unbatched, one request at a time
        assert len(got) == len(texts)
        for g, w in zip(got, want, strict=True):
            assert g["label"] == w.label
            assert g["probabilities"] == pytest.approx(w.probabilities, abs=1e-5)


def test_openapi_fuzz_no_server_errors(live: tuple[ThreadedServer, Keys, Any]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    server, keys, _ = live
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    checks = [
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_schema_conformance,
    ]  # fmt: skip
    headers = bearer(keys.bulk)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/explain", "/v1/model"}
    for operation in operations:
        examples = 25 if operation.path in ("/v1/predict", "/v1/explain") else 5

        @settings(
            max_examples=examples, deadline=None, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            case.call_and_validate(base_url=server.url, headers=headers, checks=checks)

        fuzz()
