"""Request and response bodies of the HTTP API (they make the OpenAPI schema exact)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ErrorBody",
    "ExplainRequest",
    "ExplainResponse",
    "ExplanationOut",
    "HealthOut",
    "ModelInfo",
    "PredictRequest",
    "PredictResponse",
    "PredictionOut",
    "PrivacyOut",
]

# A text needs at least one non-space character (the pattern is searched, not anchored).
Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
Label = int | str


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"texts": ["a gripping, funny film"]}]}
    )
    texts: list[Text] = Field(description="the texts to classify, in order")


class PredictionOut(BaseModel):
    label: Label = Field(description="the most probable label")
    score: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="the probability of every label")


class PredictResponse(BaseModel):
    predictions: list[PredictionOut] = Field(description="one per text, in request order")


class ExplainRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"texts": ["a gripping, funny film"], "method": "integrated-gradients"}]
        },
    )
    texts: list[Text] = Field(description="the texts to explain, in order")
    method: str = Field(
        default="integrated-gradients", description="attribution method (GET /v1/model lists them)"
    )
    target: Label | None = Field(
        default=None, description="the label to explain; default: each text's predicted label"
    )


class ExplanationOut(BaseModel):
    text: str
    method: str
    target: Label
    predicted: Label
    probabilities: dict[str, float]
    words: list[str]
    scores: list[float] = Field(description="signed contribution of each word to the target")
    spans: list[tuple[int, int]] = Field(description="(start, end) of each word in the text")
    delta: float | None = Field(description="integrated gradients: completeness error")
    truncated: bool
    dropped_words: int


class ExplainResponse(BaseModel):
    explanations: list[ExplanationOut]


class PrivacyOut(BaseModel):
    dp: bool = Field(description="trained with differential privacy (DP-SGD)")
    epsilon: float | None = Field(default=None, description="privacy budget spent (ε)")
    delta: float | None = Field(default=None, description="δ of the (ε, δ) guarantee")
    redact_pii: bool = Field(default=False, description="texts are redacted before prediction")


class ModelInfo(BaseModel):
    run: str = Field(description="the run folder's name")
    created: str | None
    base_model: str | None
    labels: list[Label]
    metrics: dict[str, float] = Field(description="validation metrics of the run")
    privacy: PrivacyOut | None
    methods: list[str] = Field(description="explanation methods this model supports")
    limits: dict[str, int] = Field(description="the server's limits per request")


class HealthOut(BaseModel):
    status: str


class ErrorBody(BaseModel):
    detail: str
