"""Explaining texts: tokenize into words, predict, attribute in length-sorted batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from trustune.config import Precision
from trustune.errors import ConfigError
from trustune.explain.batch import TokenBatch
from trustune.explain.explanation import Explanation
from trustune.explain.model import ExplainableModel
from trustune.explain.registry import DEFAULT_METHOD, ExplainOptions, get_explainer
from trustune.explain.words import TokenizedText, tokenize_words
from trustune.progress import Progress

__all__ = ["DEFAULT_METHOD", "explain_texts", "iter_explanations"]


def iter_explanations(
    model: ExplainableModel,
    texts: Sequence[str],
    *,
    method: str = DEFAULT_METHOD,
    target: Any = None,
    options: ExplainOptions | None = None,
    progress: Progress | None = None,
    text_pairs: Sequence[str] | None = None,
) -> Iterator[tuple[int, Explanation]]:
    """Explanations with the index of their text, batch by batch (texts of similar length together).

    ``target`` is the label to explain for every text; None explains each text's predicted label
    (a model that explains its output, a regression, always explains its predicted score).
    ``text_pairs``: the second text of each input, for a model trained on text pairs; the words
    of both texts are explained together.
    """
    explainer = get_explainer(method)
    explainer.check_model(model)
    options = options or ExplainOptions()
    if target is not None and model.explains == "output":
        raise ConfigError(
            "a regression explains its predicted score, there is no label to choose; "
            "drop target= (--target)"
        )
    target_index = None if target is None else model.label_index(target)
    tokenized = tokenize_words(
        model.tokenizer, texts, max_length=model.max_length, pairs=text_pairs
    )
    probabilities = model.predict_ids(
        [t.input_ids for t in tokenized], token_types=[t.token_type_ids for t in tokenized]
    )
    predicted = probabilities.argmax(axis=1)
    per_call = options.texts_per_batch if explainer.batched else 1
    order = sorted(range(len(tokenized)), key=lambda i: len(tokenized[i].input_ids))
    task = f"explain ({method})"
    if progress:
        progress.start(task, total=len(tokenized))
    try:
        for start in range(0, len(order), per_call):
            idx = order[start : start + per_call]
            targets = [int(predicted[i]) if target_index is None else target_index for i in idx]
            batch = TokenBatch.build([tokenized[i] for i in idx], targets, pad_id=model.pad_id)
            precision = Precision(options.precision)
            with model.attribution_mode(precision, gradients=explainer.needs_gradients):
                result = explainer.attribute(model, batch, options)
            for pos, i in enumerate(idx):
                delta = None if result.deltas is None else result.deltas[pos]
                yield i, _explanation(
                    model, tokenized[i], result.scores[pos], targets[pos], probabilities[i],
                    method=method, delta=delta,
                )  # fmt: skip
            if progress:
                progress.advance(task, len(idx))
    finally:
        if progress:
            progress.end(task)


def explain_texts(
    model: ExplainableModel,
    texts: Sequence[str],
    *,
    method: str = DEFAULT_METHOD,
    target: Any = None,
    options: ExplainOptions | None = None,
    progress: Progress | None = None,
    text_pairs: Sequence[str] | None = None,
) -> list[Explanation]:
    """One explanation per text (or text pair), in input order."""
    texts = list(texts)
    out: list[Explanation | None] = [None] * len(texts)
    stream = iter_explanations(
        model, texts, method=method, target=target, options=options, progress=progress,
        text_pairs=text_pairs,
    )  # fmt: skip
    for i, explanation in stream:
        out[i] = explanation
    return [e for e in out if e is not None]


def _explanation(
    model: ExplainableModel,
    text: TokenizedText,
    scores: np.ndarray,
    target: int,
    probabilities: np.ndarray,
    *,
    method: str,
    delta: float | None,
) -> Explanation:
    labels = model.labels
    return Explanation(
        text=text.text,
        words=text.words,
        scores=tuple(float(s) for s in scores),
        spans=text.spans,
        target=labels[target],
        predicted=labels[int(probabilities.argmax())],
        probabilities={
            str(n): round(float(p), 6) for n, p in zip(labels, probabilities, strict=True)
        },
        method=method,
        delta=delta,
        truncated=text.truncated,
        dropped_words=text.dropped_words,
        text_pair=text.text_pair,
        segments=text.segments,
    )
