"""The HTTP API: predict, explain, model facts, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import Future
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from trustune.errors import TrustuneError
from trustune.serve.auth import require_role
from trustune.serve.metrics import CONTENT_TYPE
from trustune.serve.schemas import (
    ErrorBody,
    ExplainRequest,
    ExplainResponse,
    ExplanationOut,
    HealthOut,
    ModelInfo,
    PredictionOut,
    PredictRequest,
    PredictResponse,
    ScoreOut,
)
from trustune.serve.state import ServerState
from trustune.store import Role

__all__ = ["ClientDisconnected", "router"]

router = APIRouter()
T = TypeVar("T")

PredictKey = Annotated[Any, Depends(require_role(Role.PREDICT))]
ExplainKey = Annotated[Any, Depends(require_role(Role.EXPLAIN))]

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, unknown, expired or revoked API key"},
    403: {"model": ErrorBody, "description": "the key's role does not allow this route"},
    429: {"model": ErrorBody, "description": "the key is over its rate limit (see Retry-After)"},
    503: {"model": ErrorBody, "description": "too many requests in flight; retry shortly"},
}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_AUTH_ERRORS,
    413: {"model": ErrorBody, "description": "request body over the size limit"},
}


def _server(request: Request) -> ServerState:
    server: ServerState = request.app.state.trustune
    return server


class ClientDisconnected(Exception):
    """The client went away while its request waited for the model (answered 499, audited)."""


async def _disconnected(request: Request) -> None:
    """Returns once the client has disconnected (after the body only that message comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _answer(request: Request, future: Future[T]) -> T:
    """The model thread's answer; if the client disconnects first, cancel the work instead."""
    answer = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_disconnected(request))
    waiting: set[asyncio.Future[Any]] = {answer, gone}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this task was cancelled (shutdown): drop the work too
        answer.cancel()
        raise
    finally:
        gone.cancel()
    if answer.done():
        return answer.result()
    answer.cancel()  # cancels ``future``: the batcher drops its pieces that have not run
    raise ClientDisconnected


def _invalid(field: str, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ["body", field], "msg": message}])


def _check_texts(request: Request, texts: list[str], *, limit: int) -> None:
    """The server's limits on a request's texts (422), recorded for the audit log."""
    server = _server(request)
    request.state.n_texts = len(texts)
    request.state.texts = texts
    if len(texts) > limit:
        raise _invalid(
            "texts", f"{len(texts)} texts in one request; the limit is {limit}: split the request",
            "too_long",
        )  # fmt: skip
    max_chars = server.settings.max_chars
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise _invalid(
                "texts", f"text {i + 1} has {len(text)} characters; the limit is {max_chars}",
                "string_too_long",
            )  # fmt: skip
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _invalid(
                "texts", f"text {i + 1} is not valid Unicode (a lone surrogate)"
            ) from None


@router.post(
    "/v1/predict", response_model=PredictResponse, responses=_BODY_ERRORS, tags=["model"],
    summary="Label and class probabilities of each text",
)  # fmt: skip
async def predict(body: PredictRequest, request: Request, _key: PredictKey) -> PredictResponse:
    server = _server(request)
    _check_texts(request, body.texts, limit=server.settings.max_texts)
    owner = getattr(_key, "id", None)  # turns are shared per API key
    inputs: list[Any] = list(body.texts)
    if server.classifier.pairs:
        if body.text_pairs is None or len(body.text_pairs) != len(body.texts):
            raise _invalid(
                "text_pairs", "this model reads text pairs: send text_pairs, one per text"
            )
        _check_texts(request, body.text_pairs, limit=server.settings.max_texts)
        request.state.texts = [*body.texts, *body.text_pairs]
        inputs = list(zip(body.texts, body.text_pairs, strict=True))
    elif body.text_pairs is not None:
        raise _invalid("text_pairs", "this model reads single texts: drop text_pairs")
    predictions = await _answer(request, server.batcher.submit(inputs, owner=owner))
    return PredictResponse(predictions=[_prediction(p.to_dict()) for p in predictions])


def _prediction(data: dict[str, Any]) -> PredictionOut | ScoreOut:
    return ScoreOut(**data) if "value" in data else PredictionOut(**data)


@router.post(
    "/v1/explain", response_model=ExplainResponse, responses=_BODY_ERRORS, tags=["model"],
    summary="Word scores: why the model gives the target label its probability (role explain)",
)  # fmt: skip
async def explain(body: ExplainRequest, request: Request, _key: ExplainKey) -> ExplainResponse:
    server = _server(request)
    _check_texts(request, body.texts, limit=server.settings.max_explain_texts)
    if body.method not in server.methods:
        raise _invalid(  # the value itself is not echoed: it may be huge
            "method", f"unknown method; this model supports {list(server.methods)}"
        )
    target = None
    if body.target is not None:
        labels = server.classifier.labels
        matches = [label for label in labels if str(label) == str(body.target)]
        if not matches:
            raise _invalid("target", f"unknown label; the labels are {list(labels)}")
        target = matches[0]
    if not body.texts:
        return ExplainResponse(explanations=[])
    classifier, texts, pairs = server.classifier, body.texts, body.text_pairs
    if classifier.pairs:
        if pairs is None or len(pairs) != len(texts):
            raise _invalid(
                "text_pairs", "this model reads text pairs: send text_pairs, one per text"
            )
        _check_texts(request, pairs, limit=server.settings.max_explain_texts)
        request.state.texts = [*texts, *pairs]
    elif pairs is not None:
        raise _invalid("text_pairs", "this model reads single texts: drop text_pairs")

    def work() -> list[Any]:
        return classifier.explain(texts, pairs, method=body.method, target=target)

    try:
        explanations = await _answer(request, server.batcher.run(work))
    except TrustuneError as e:
        raise _invalid("texts", str(e)) from None
    return ExplainResponse(explanations=[_explanation(e.to_dict()) for e in explanations])


def _explanation(data: dict[str, Any]) -> ExplanationOut:
    delta = data.get("delta")
    data["delta"] = delta if delta is None or math.isfinite(delta) else None
    data["scores"] = [s if math.isfinite(s) else 0.0 for s in data["scores"]]
    return ExplanationOut(**data)


@router.get(
    "/v1/model", response_model=ModelInfo, responses=_AUTH_ERRORS, tags=["model"],
    summary="Model card facts: labels, validation metrics, privacy budget (ε)",
)  # fmt: skip
async def model_info(request: Request, _key: PredictKey) -> ModelInfo:
    return _server(request).model_info


@router.get("/healthz", response_model=HealthOut, tags=["operations"], summary="The process is up")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz", response_model=HealthOut, tags=["operations"],
    responses={503: {"model": HealthOut, "description": "starting or shutting down"}},
    summary="The model is loaded and requests are being accepted",
)  # fmt: skip
async def readyz(request: Request) -> Any:
    if _server(request).ready:
        return HealthOut(status="ready")
    return JSONResponse({"status": "not ready"}, status_code=503)


@router.get(
    "/metrics", tags=["operations"], summary="Prometheus metrics",
    response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}},
)  # fmt: skip
async def metrics(request: Request) -> Response:
    return Response(_server(request).metrics.render(), media_type=CONTENT_TYPE)
