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
    "ScoreOut",
]

# A text needs at least one non-space character (the pattern is searched, not anchored).
Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
Label = int | str
_TRUNCATED = (
    "the text is longer than the model's max_length (GET /v1/model): the model read only its "
    "first max_length tokens and ignored the rest"
)
_CUT_AT = (
    "when truncated: the model read text[:cut_at] (characters); null when it read everything, "
    "and for text pairs and runs that redact PII (the cut is in a text the client did not send)"
)


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"texts": ["a gripping, funny film"]}]}
    )
    texts: list[Text] = Field(description="the texts to predict, in order")
    text_pairs: list[Text] | None = Field(
        default=None,
        description="for a run trained on text pairs: the second text of each input, in order",
    )


class PredictionOut(BaseModel):
    """A classification run's prediction."""

    model_config = ConfigDict(extra="forbid")
    label: Label = Field(description="the most probable label")
    score: float = Field(description="its probability")
    probabilities: dict[str, float] = Field(description="the probability of every label")
    truncated: bool = Field(default=False, description=_TRUNCATED)
    cut_at: int | None = Field(default=None, description=_CUT_AT)


class ScoreOut(BaseModel):
    """A regression run's prediction."""

    model_config = ConfigDict(extra="forbid")
    value: float = Field(description="the predicted score, in the unit of the training targets")
    truncated: bool = Field(default=False, description=_TRUNCATED)
    cut_at: int | None = Field(default=None, description=_CUT_AT)


class PredictResponse(BaseModel):
    predictions: list[PredictionOut | ScoreOut] = Field(
        description="one per text, in request order: a label with probabilities "
        "(text-classification) or a value (text-regression)"
    )


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
    text_pairs: list[Text] | None = Field(
        default=None,
        description="for a run trained on text pairs: the second text of each input, in order",
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
    text_pair: str | None = Field(default=None, description="a text pair's second text")
    segments: list[int] | None = Field(
        default=None,
        description="which text each word is in (0: text, 1: text_pair); its span is in that text",
    )


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
    task: str = Field(description="text-classification or text-regression")
    pairs: bool = Field(description="inputs are text pairs (send text_pairs with texts)")
    max_length: int | None = Field(
        default=None,
        description="the longest input the model reads, in tokens; longer texts "
        "are cut (a prediction's truncated and cut_at say where)",
    )
    labels: list[Label] = Field(description="the labels (empty for a regression)")
    metrics: dict[str, float] = Field(description="validation metrics of the run")
    privacy: PrivacyOut | None
    methods: list[str] = Field(description="explanation methods this model supports")
    limits: dict[str, int] = Field(description="the server's limits per request")


class HealthOut(BaseModel):
    status: str


class ErrorBody(BaseModel):
    detail: str
