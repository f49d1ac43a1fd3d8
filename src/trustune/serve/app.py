"""The FastAPI application of ``trustune serve``, built around one loaded classifier."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from trustune.errors import ConfigError
from trustune.serve.apidocs import add_api_docs
from trustune.serve.audit import AuditWriter
from trustune.serve.auth import Authenticator, KeyStore
from trustune.serve.batcher import MicroBatcher
from trustune.serve.bodylimit import BodyLimitMiddleware
from trustune.serve.concurrency import ConcurrencyLimitMiddleware, InFlight
from trustune.serve.console import console_router
from trustune.serve.metrics import ServeMetrics
from trustune.serve.ratelimit import RateLimiter
from trustune.serve.recording import CLIENT_GONE, RecordRequestsMiddleware
from trustune.serve.schemas import ModelInfo, PrivacyOut
from trustune.serve.settings import ServeSettings
from trustune.serve.state import ServerState
from trustune.serve.truncation import served
from trustune.version import __version__

if TYPE_CHECKING:
    from trustune.loaded import LoadedRun

__all__ = ["ENV_SETTINGS", "app_from_env", "create_app", "model_info"]

ENV_SETTINGS = "TRUSTUNE_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker

_DESCRIPTION = (
    "A fine-tuned trustune text classifier. Every `/v1` route needs `Authorization: Bearer KEY` "
    "(keys from `trustune keys create`); `/v1/explain` needs a key with role `explain`."
)


def create_app(
    classifier: LoadedRun, *, settings: ServeSettings | None = None,
    store: KeyStore | None = None,
) -> FastAPI:  # fmt: skip
    """The app serving ``classifier``; ``store`` checks keys and keeps the audit log.

    The model thread and the audit writer start with the app (its lifespan) and are drained when
    it stops, after the in-flight requests have been answered.
    """
    settings = settings or ServeSettings()
    if settings.auth and store is None:
        raise ConfigError("a server with API keys needs a store (store=trustune.store.Store...)")
    metrics = ServeMetrics()
    in_flight = InFlight()
    metrics.in_flight.set_function(lambda: in_flight.total)
    batcher = MicroBatcher(
        lambda inputs: served(classifier, inputs, _predict(classifier, inputs, settings.max_batch)),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        pending=lambda: in_flight.count("/v1/predict"),
        on_batch=metrics.observe_batch,
    )
    audit = None
    if store is not None:
        audit = AuditWriter(
            store.record, flush_ms=settings.audit_flush_ms, retry_s=settings.audit_retry_s,
            on_written=metrics.audit_written.inc, on_retry=metrics.audit_retries.inc,
            on_dropped=metrics.audit_dropped.inc,
        )  # fmt: skip
    from trustune.explain import ExplainableModel, methods_for

    methods = tuple(methods_for(ExplainableModel.from_classifier(classifier)))
    server = ServerState(
        classifier=classifier,
        settings=settings,
        store=store,
        batcher=batcher,
        authenticator=Authenticator(store) if store is not None else None,
        rate_limiter=RateLimiter(),
        address_limiter=RateLimiter(),
        audit=audit,
        metrics=metrics,
        in_flight=in_flight,
        model_info=model_info(classifier, settings, methods),
        methods=methods,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        batcher.start()
        if audit is not None:
            audit.start()
        try:
            yield
        finally:
            server.draining = True
            batcher.stop()  # in-flight requests have been answered: this only ends the thread
            if audit is not None:
                audit.close()

    app = FastAPI(
        title="trustune",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by add_api_docs from local files: no CDN
        redoc_url=None,
    )
    add_api_docs(app, title="trustune")
    app.state.trustune = server
    app.add_exception_handler(RequestValidationError, _validation_error)
    from trustune.serve.routes import ClientDisconnected, router

    app.add_exception_handler(ClientDisconnected, _client_gone)
    app.include_router(router)
    app.include_router(console_router)
    every_route = [*app.routes, *router.routes, *console_router.routes]
    paths = frozenset(
        path for path in (str(getattr(r, "path", "{")) for r in every_route) if "{" not in path
    )
    # Added innermost first. Outermost, recording sees every answer (413, 408, 503 included);
    # then the concurrency limit, which counts a request while its body is still arriving;
    # then the body limits (size and read timeout), so a slow upload holds a slot until it ends.
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    app.add_middleware(
        ConcurrencyLimitMiddleware, limit=settings.max_concurrency, in_flight=in_flight
    )
    app.add_middleware(RecordRequestsMiddleware, server=server, paths=paths)
    return app


_MAX_ERRORS = 10  # a body of 10,000 bad texts gets the first ten problems, not 10,000
_MAX_MSG_CHARS = 300
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming the field and the problem, never echoing the input back (it may be huge, secret,
    or not even encodable: a lone surrogate)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"type": str(e.get("type", "value_error"))[:64], "loc": _location(e.get("loc", ())),
         "msg": str(e.get("msg", "invalid request"))[:_MAX_MSG_CHARS]}
        for e in errors[:_MAX_ERRORS]
    ]  # fmt: skip
    return JSONResponse({"detail": detail}, status_code=422)


def _location(loc: Any) -> list[str | int]:
    """Where the problem is; a key that is not a plain field name (it came from the caller's
    body) is shown as ``<key>``, not echoed."""
    parts: list[str | int] = []
    for part in list(loc)[:8]:
        plain_index = isinstance(part, int) and not isinstance(part, bool)
        if plain_index or (isinstance(part, str) and _FIELD_NAME.fullmatch(part)):
            parts.append(part)
        else:
            parts.append("<key>")
    return parts


async def _client_gone(request: Request, exc: Exception) -> Response:
    """Nobody is left to read an answer; the status is for the audit log and the metrics."""
    return Response(status_code=CLIENT_GONE)


def _predict(classifier: LoadedRun, inputs: list[Any], batch_size: int) -> Sequence[Any]:
    """One batch of the micro-batcher: texts, or (text, second text) tuples for a pair run."""
    if classifier.pairs:
        return classifier.predict(
            [t for t, _ in inputs], [p for _, p in inputs], batch_size=batch_size
        )
    return classifier.predict(inputs, batch_size=batch_size)


def model_info(
    classifier: LoadedRun, settings: ServeSettings, methods: tuple[str, ...]
) -> ModelInfo:
    """The facts ``GET /v1/model`` returns, read once from the run's manifest and metrics."""
    manifest = classifier.manifest
    try:
        from trustune.artifact import read_metrics

        validation = read_metrics(classifier.run_dir).get("validation", {})
    except Exception:
        validation = {}
    scalars = {
        k: float(v) for k, v in validation.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }  # fmt: skip
    privacy_section = manifest.privacy
    privacy = None
    if privacy_section is not None:
        privacy = PrivacyOut(
            dp=privacy_section.dp,
            epsilon=privacy_section.epsilon,
            delta=privacy_section.delta,
            redact_pii=classifier.redact_pii,
        )
    return ModelInfo(
        run=classifier.run_dir.name,
        created=manifest.created,
        base_model=manifest.model.source,
        task=classifier.task.name,
        pairs=classifier.pairs,
        max_length=classifier.max_length,
        labels=list(classifier.labels) if classifier.task.name == "text-classification" else [],
        metrics=scalars,
        privacy=privacy,
        methods=list(methods),
        limits={
            "max_texts": settings.max_texts,
            "max_explain_texts": settings.max_explain_texts,
            "max_chars": settings.max_chars,
            "max_body_bytes": settings.max_body_bytes,
        },
    )


def app_from_env() -> FastAPI:
    """The app of one ``--workers`` process: settings and run from ``$TRUSTUNE_SERVE_SETTINGS``."""
    from trustune.api import load

    spec: dict[str, Any] = json.loads(os.environ[ENV_SETTINGS])
    settings = ServeSettings.from_dict(spec["settings"])
    classifier = load(spec["run"], key=spec.get("key_file"), public_key=spec.get("public_key"))
    from trustune.store import Store

    store = Store.open(settings.db_url)
    return create_app(classifier, settings=settings, store=store)
