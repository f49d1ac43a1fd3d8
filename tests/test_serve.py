"""The HTTP service through its app (httpx TestClient, real SQLite store): auth matrix, limits,
validation, batching results, audit log, metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

import trustune
from test_serve_support import Keys, bearer, make_store
from trustune.errors import ConfigError
from trustune.serve import ServeSettings, create_app, is_loopback


@pytest.fixture(scope="module")
def classifier(tiny_run: Path) -> Any:
    return trustune.load(tiny_run)


@pytest.fixture(scope="module")
def store_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Keys]]:
    store, keys = make_store(tmp_path_factory.mktemp("serve-db") / "trustune.db")
    yield store, keys
    store.close()


@pytest.fixture(scope="module")
def client(classifier: Any, store_keys: tuple[Any, Keys]) -> Iterator[TestClient]:
    settings = ServeSettings(max_texts=10_000, max_chars=2_000, max_explain_texts=4)
    app = create_app(classifier, settings=settings, store=store_keys[0])
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def keys(store_keys: tuple[Any, Keys]) -> Keys:
    return store_keys[1]


ROUTES = {
    "predict": ("POST", "/v1/predict", {"texts": ["a fine film"]}),
    "explain": ("POST", "/v1/explain", {"texts": ["a fine film"], "method": "occlusion"}),
    "model": ("GET", "/v1/model", None),
}
# key -> the status of each route
MATRIX = {
    None: (401, 401, 401),
    "garbage": (401, 401, 401),
    "expired": (401, 401, 401),
    "revoked": (401, 401, 401),
    "predict": (200, 403, 200),
    "explain": (200, 200, 200),
    "admin": (200, 200, 200),
}


@pytest.mark.parametrize("key_kind", list(MATRIX))
def test_auth_matrix(client: TestClient, keys: Keys, key_kind: str | None) -> None:
    for (method, path, body), expected in zip(ROUTES.values(), MATRIX[key_kind], strict=True):
        headers = {}
        if key_kind == "garbage":
            headers = bearer("tt_not-a-key-anyone-made")
        elif key_kind is not None:
            headers = bearer(getattr(keys, key_kind))
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == expected, (key_kind, path, response.text)
        if expected == 401:
            assert response.headers["www-authenticate"] == "Bearer"
            detail = response.json()["detail"]
            want = {None: "missing API key", "garbage": "unknown API key",
                    "expired": "has expired", "revoked": "was revoked"}[key_kind]  # fmt: skip
            assert want in detail
        if expected == 403:
            assert "needs role explain" in response.json()["detail"]


def test_other_auth_schemes_are_refused(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/predict", json={"texts": ["x"]}, headers={"Authorization": f"Basic {keys.predict}"}
    )
    assert response.status_code == 401


def test_revocation_takes_effect_within_a_second(
    classifier: Any, store_keys: tuple[Any, Keys]
) -> None:
    store = store_keys[0]
    key, secret = store.create_key(name="short-lived", role="predict")
    with TestClient(create_app(classifier, store=store)) as c:
        ok = c.post("/v1/predict", json={"texts": ["hello"]}, headers=bearer(secret))
        assert ok.status_code == 200
        store.revoke_key(key.id)
        time.sleep(1.1)  # the server may cache a key for at most one second
        refused = c.post("/v1/predict", json={"texts": ["hello"]}, headers=bearer(secret))
        assert refused.status_code == 401
        assert "was revoked" in refused.json()["detail"]


def test_rate_limit_answers_429_with_retry_after(client: TestClient, keys: Keys) -> None:
    statuses = []
    for _ in range(3):
        r = client.post("/v1/predict", json={"texts": ["hi"]}, headers=bearer(keys.limited))
        statuses.append(r.status_code)
    assert statuses == [200, 200, 429]
    assert int(r.headers["retry-after"]) >= 1
    assert "rate limit" in r.json()["detail"]


def test_predictions_match_the_library(client: TestClient, keys: Keys, classifier: Any) -> None:
    texts = ["a gripping, funny film", "dull and far too long", "ok"]
    response = client.post("/v1/predict", json={"texts": texts}, headers=bearer(keys.predict))
    assert response.status_code == 200
    got = response.json()["predictions"]
    want = [p.to_dict() for p in classifier.predict(texts)]
    assert [g["label"] for g in got] == [w["label"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)


def test_unicode_texts(client: TestClient, keys: Keys, classifier: Any) -> None:
    texts = [
        "café crème ☕",
        "東京は素晴らしい",
        "مرحبا بالعالم",
        "e\u0301\u0301",
        "🙂🙃" * 50,
        "a\x00b",
    ]
    response = client.post("/v1/predict", json={"texts": texts}, headers=bearer(keys.predict))
    assert response.status_code == 200
    got = [p["label"] for p in response.json()["predictions"]]
    assert got == [p.label for p in classifier.predict(texts)]


def test_ten_thousand_texts(client: TestClient, keys: Keys, classifier: Any) -> None:
    texts = [f"review number {i} {'good' if i % 3 else 'bad'}" for i in range(10_000)]
    response = client.post("/v1/predict", json={"texts": texts}, headers=bearer(keys.predict))
    assert response.status_code == 200
    got = response.json()["predictions"]
    assert len(got) == 10_000
    want = classifier.predict(texts, batch_size=32)
    assert [g["label"] for g in got] == [w.label for w in want]
    over = client.post("/v1/predict", json={"texts": [*texts, "x"]}, headers=bearer(keys.predict))
    assert over.status_code == 422
    assert "the limit is 10000" in over.json()["detail"][0]["msg"]


def test_empty_list_gives_no_predictions(client: TestClient, keys: Keys) -> None:
    response = client.post("/v1/predict", json={"texts": []}, headers=bearer(keys.predict))
    assert response.status_code == 200
    assert response.json() == {"predictions": []}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"texts": ["unterminated',
        b"",
        b"[]",
        b'{"texts": "a string, not a list"}',
        b'{"texts": [1, 2]}',
        b'{"texts": ["   "]}',
        b'{"texts": [""]}',
        b'{"texts": ["ok"], "extra": 1}',
        b'{"texts": ["\\ud800 lone surrogate"]}',
        b'{"texts": ["' + b"x" * 2001 + b'"]}',
    ],
)
def test_bad_bodies_are_422_not_500(client: TestClient, keys: Keys, content: bytes) -> None:
    response = client.post(
        "/v1/predict", content=content,
        headers={**bearer(keys.predict), "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"]


def test_body_that_is_not_utf8_is_400(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/predict", content='{"texts": ["caf\xe9"]}'.encode("latin-1"),
        headers={**bearer(keys.predict), "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "parsing the body" in response.json()["detail"]


def test_oversized_body_is_413(client: TestClient, keys: Keys) -> None:
    big = json.dumps({"texts": ["word " * 1000] * 300}).encode()  # ~1.5 MB
    response = client.post(
        "/v1/predict", content=big,
        headers={**bearer(keys.predict), "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413
    assert "the limit is 1048576 bytes" in response.json()["detail"]


def test_chunked_body_without_content_length(client: TestClient, keys: Keys) -> None:
    def chunks(n: int) -> Iterator[bytes]:
        yield b'{"texts": ['
        for i in range(n):
            yield (b", " if i else b"") + json.dumps("word " * 200).encode()
        yield b"]}"

    headers = {**bearer(keys.predict), "Content-Type": "application/json"}
    big = client.post("/v1/predict", content=chunks(2000), headers=headers)  # ~2 MB
    assert big.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in big.request.headers
    assert big.status_code == 413
    small = client.post("/v1/predict", content=chunks(3), headers=headers)
    assert small.status_code == 200
    assert len(small.json()["predictions"]) == 3


def test_explain_returns_word_scores(client: TestClient, keys: Keys, classifier: Any) -> None:
    body = {"texts": ["a fine film", "bad"], "method": "occlusion", "target": classifier.labels[0]}
    response = client.post("/v1/explain", json=body, headers=bearer(keys.explain))
    assert response.status_code == 200, response.text
    first = response.json()["explanations"][0]
    assert first["words"] == ["a", "fine", "film"]
    assert len(first["scores"]) == 3
    assert first["target"] == classifier.labels[0]
    want = classifier.explain(["a fine film"], method="occlusion", target=classifier.labels[0])[0]
    assert first["scores"] == pytest.approx(list(want.scores), abs=1e-5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"texts": ["x"], "method": "tea-leaves"}, "unknown method; this model supports"),
        ({"texts": ["x"], "target": "no-such-label"}, "unknown label; the labels are"),
        ({"texts": ["x"] * 5}, "the limit is 4"),
    ],
)
def test_explain_refuses_bad_requests(
    client: TestClient, keys: Keys, body: dict[str, Any], message: str
) -> None:
    response = client.post("/v1/explain", json=body, headers=bearer(keys.explain))
    assert response.status_code == 422
    assert message in response.json()["detail"][0]["msg"]


def test_model_info(client: TestClient, keys: Keys, classifier: Any) -> None:
    info = client.get("/v1/model", headers=bearer(keys.predict)).json()
    assert info["labels"] == list(classifier.labels)
    assert "accuracy" in info["metrics"]
    assert info["privacy"] is None
    assert "integrated-gradients" in info["methods"]
    assert info["limits"]["max_texts"] == 10_000


def test_health_readiness_metrics_openapi(client: TestClient, keys: Keys) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post("/v1/predict", json={"texts": ["x", "y"]}, headers=bearer(keys.predict))
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'trustune_requests_total{route="/v1/predict",status="200"}' in metrics.text
    assert "trustune_batch_texts_bucket" in metrics.text
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) >= {"/v1/predict", "/v1/explain", "/v1/model", "/healthz"}
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "429" in schema["paths"]["/v1/predict"]["post"]["responses"]


def test_console_page_is_self_contained(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/console/console.js", "/console/console.css"):
        response = client.get(asset)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text


def test_audit_log_records_requests_without_text(classifier: Any, tmp_path: Path) -> None:
    from trustune.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'audit.db'}")
    key, secret = store.create_key(name="audited", role="predict")
    with TestClient(create_app(classifier, store=store)) as c:
        c.post("/v1/predict", json={"texts": ["secret text", "more"]}, headers=bearer(secret))
        c.post("/v1/explain", json={"texts": ["secret text"]}, headers=bearer(secret))
        c.post("/v1/predict", json={"texts": ["x"]})
    entries = store.audit_entries()  # the app's shutdown wrote the last batch
    by_route = {(e.route, e.status): e for e in entries}
    ok = by_route[("POST /v1/predict", 200)]
    assert (ok.key_id, ok.n_texts, ok.text) == (key.id, 2, None)
    assert ok.latency_ms > 0
    assert by_route[("POST /v1/explain", 403)].key_id == key.id
    assert by_route[("POST /v1/predict", 401)].key_id is None
    assert all(e.text is None for e in entries)
    store.close()


def test_audit_log_keeps_texts_only_when_asked(classifier: Any, tmp_path: Path) -> None:
    from trustune.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'audit.db'}")
    _, secret = store.create_key(name="audited", role="predict")
    app = create_app(classifier, settings=ServeSettings(log_texts=True), store=store)
    with TestClient(app) as c:
        c.post("/v1/predict", json={"texts": ["keep me"]}, headers=bearer(secret))
    (entry,) = [e for e in store.audit_entries() if e.route == "POST /v1/predict"]
    assert json.loads(entry.text) == ["keep me"]
    store.close()


def test_concurrency_limit_answers_503(
    classifier: Any, store_keys: tuple[Any, Keys], keys: Keys
) -> None:
    app = create_app(classifier, settings=ServeSettings(max_concurrency=1), store=store_keys[0])
    server = app.state.trustune
    with TestClient(app) as c:
        release = threading.Event()
        server.batcher.run(release.wait)  # the model thread is busy until released
        first: dict[str, int] = {}

        def call() -> None:
            r = c.post("/v1/predict", json={"texts": ["a"]}, headers=bearer(keys.admin))
            first["status"] = r.status_code

        thread = threading.Thread(target=call)
        thread.start()
        while server.in_flight.total < 1:
            time.sleep(0.01)
        busy = c.post("/v1/predict", json={"texts": ["b"]}, headers=bearer(keys.admin))
        release.set()
        thread.join(30)
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert first["status"] == 200


def test_no_auth_serves_without_keys_on_loopback(classifier: Any) -> None:
    app = create_app(classifier, settings=ServeSettings(auth=False))
    with TestClient(app) as c:
        assert c.post("/v1/predict", json={"texts": ["x"]}).status_code == 200
        assert (
            c.post("/v1/explain", json={"texts": ["x"], "method": "occlusion"}).status_code == 200
        )


def test_no_auth_is_refused_off_loopback() -> None:
    with pytest.raises(ConfigError, match=r"may only listen on 127\.0\.0\.1"):
        ServeSettings(auth=False, host="0.0.0.0")
    ServeSettings(auth=True, host="0.0.0.0")  # with keys, any address may be chosen
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.3.4.5")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_auth_needs_a_store(classifier: Any) -> None:
    with pytest.raises(ConfigError, match="needs a store"):
        create_app(classifier, settings=ServeSettings())


@pytest.mark.parametrize(
    ("field", "value"), [("max_batch", 0), ("port", 70000), ("max_wait_ms", -1), ("threads", 0)]
)
def test_settings_are_validated(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        ServeSettings(**{field: value})


def test_serves_an_encrypted_run(
    tiny_run: Path, tmp_path: Path, store_keys: tuple[Any, Keys], classifier: Any
) -> None:
    from trustune.security import encrypt_run, generate_key

    key = generate_key()
    sealed = encrypt_run(tiny_run, key=key, output=tmp_path / "sealed")
    app = create_app(trustune.load(sealed, key=key), store=store_keys[0])
    with TestClient(app) as c:
        response = c.post(
            "/v1/predict", json={"texts": ["a fine film"]}, headers=bearer(store_keys[1].predict)
        )
    assert response.status_code == 200
    assert (
        response.json()["predictions"][0]["label"] == classifier.predict(["a fine film"])[0].label
    )


def test_unreachable_key_database_is_503(classifier: Any) -> None:
    from trustune.errors import StoreError

    class DownStore:  # the database is down: every lookup fails
        def authenticate(self, secret: str) -> None:
            raise StoreError("cannot reach the database")

        def record(self, entries: Any) -> None:
            raise StoreError("cannot reach the database")

    settings = ServeSettings(audit_retry_s=0.2)  # the audit writes fail too: do not retry long
    with TestClient(create_app(classifier, settings=settings, store=DownStore())) as c:
        response = c.post("/v1/predict", json={"texts": ["x"]}, headers=bearer("tt_anything"))
        assert c.get("/healthz").status_code == 200  # a failing audit write harms no request
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "cannot check API keys" in response.json()["detail"]


def test_api_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text and "/openapi.json" in page.text
    assert "https://" not in page.text  # nothing loaded from another host
    script = client.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
