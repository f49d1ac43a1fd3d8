"""How far to trust an explanation: ERASER's comprehensiveness and sufficiency (DeYoung et al. 2020).

For each text, the top k% of its words by attribution form the rationale. Comprehensiveness
is how much the target probability drops when the rationale is deleted (higher: the words
that the method ranks first really matter); sufficiency is how much it drops when only the
rationale is kept (lower: those words alone carry the decision). Both are averaged over the
bins k = 1, 5, 10, 20, 50% (AOPC) and over the texts, and compared with random word rankings.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trustune.errors import ConfigError, DataError
from trustune.explain.explainer import explain_texts
from trustune.explain.explanation import Explanation
from trustune.explain.model import ExplainableModel
from trustune.explain.registry import ExplainOptions, get_explainer, methods_for
from trustune.explain.words import TokenizedText, check_texts, tokenize_words
from trustune.progress import Progress

__all__ = [
    "BINS",
    "FAITHFULNESS_TASK",
    "RANDOM",
    "FaithfulnessReport",
    "MethodFaithfulness",
    "evaluate_faithfulness",
    "faithfulness_of",
    "score_explanations",
]

BINS = (1, 5, 10, 20, 50)  # percent of the words in the rationale
FAITHFULNESS_TASK = "faithfulness"  # the progress task of evaluating and scoring
RANDOM = "random"  # the name of the random-ranking baseline in results


@dataclass(frozen=True)
class MethodFaithfulness:
    """AOPC comprehensiveness and sufficiency of one method (or of the random baseline)."""

    method: str
    comprehensiveness: float
    sufficiency: float
    comprehensiveness_by_bin: dict[int, float]
    sufficiency_by_bin: dict[int, float]
    seconds_per_text: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "comprehensiveness": round(self.comprehensiveness, 6),
            "sufficiency": round(self.sufficiency, 6),
            "comprehensiveness_by_bin": {
                str(k): round(v, 6) for k, v in self.comprehensiveness_by_bin.items()
            },
            "sufficiency_by_bin": {str(k): round(v, 6) for k, v in self.sufficiency_by_bin.items()},
            "seconds_per_text": None
            if self.seconds_per_text is None
            else round(self.seconds_per_text, 4),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodFaithfulness:
        return cls(
            method=str(data["method"]),
            comprehensiveness=float(data["comprehensiveness"]),
            sufficiency=float(data["sufficiency"]),
            comprehensiveness_by_bin={
                int(k): float(v) for k, v in data["comprehensiveness_by_bin"].items()
            },
            sufficiency_by_bin={int(k): float(v) for k, v in data["sufficiency_by_bin"].items()},
            seconds_per_text=None
            if data.get("seconds_per_text") is None
            else float(data["seconds_per_text"]),
        )


@dataclass(frozen=True)
class FaithfulnessReport:
    """Faithfulness of each method and of random rankings on the same texts."""

    texts: int
    bins: tuple[int, ...]
    methods: tuple[MethodFaithfulness, ...]

    def get(self, method: str) -> MethodFaithfulness:
        for entry in self.methods:
            if entry.method == method:
                return entry
        raise KeyError(method)

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "bins": list(self.bins),
            "methods": [m.to_dict() for m in self.methods],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaithfulnessReport:
        return cls(
            texts=int(data["texts"]),
            bins=tuple(int(b) for b in data["bins"]),
            methods=tuple(MethodFaithfulness.from_dict(m) for m in data["methods"]),
        )


def _rationale_size(n_words: int, percent: int) -> int:
    """Words in the top ``percent``: at least one, at most all."""
    return min(n_words, max(1, math.ceil(n_words * percent / 100)))


def faithfulness_of(
    model: ExplainableModel,
    tokenized: Sequence[TokenizedText],
    rankings: Sequence[Sequence[float] | np.ndarray],
    targets: Sequence[int],
    *,
    bins: Sequence[int] = BINS,
    method: str = "",
) -> MethodFaithfulness:
    """Comprehensiveness and sufficiency of word scores (one sequence per text; higher ranks first)."""
    variants: list[list[int]] = []
    types: list[list[int] | None] = []  # the segments of text pairs go with their tokens
    for text, scores in zip(tokenized, rankings, strict=True):
        if len(scores) != text.n_words:
            raise ConfigError(f"{len(scores)} scores for {text.n_words} words; give one per word")
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        variants.append(list(text.input_ids))
        types.append(text.types_without_words(set()))
        for percent in bins:
            top = {int(w) for w in order[: _rationale_size(text.n_words, percent)]}
            rest = set(range(text.n_words)) - top
            for removed in (top, rest):  # comprehensiveness: rationale deleted; sufficiency: kept
                variants.append(text.without_words(removed))
                types.append(text.types_without_words(removed))
    probabilities = model.predict_ids(variants, token_types=types)
    per_text = 1 + 2 * len(bins)
    comprehensiveness = np.zeros(len(bins))
    sufficiency = np.zeros(len(bins))
    for row, target in enumerate(targets):
        p = probabilities[row * per_text : (row + 1) * per_text, target]
        comprehensiveness += p[0] - p[1::2]
        sufficiency += p[0] - p[2::2]
    n = max(len(targets), 1)
    comprehensiveness /= n
    sufficiency /= n
    return MethodFaithfulness(
        method=method,
        comprehensiveness=float(comprehensiveness.mean()),
        sufficiency=float(sufficiency.mean()),
        comprehensiveness_by_bin={
            b: float(v) for b, v in zip(bins, comprehensiveness, strict=True)
        },
        sufficiency_by_bin={b: float(v) for b, v in zip(bins, sufficiency, strict=True)},
    )


def evaluate_faithfulness(
    model: ExplainableModel,
    texts: Sequence[str],
    *,
    methods: Sequence[str] | None = None,
    sample: int | None = 100,
    random_repeats: int = 5,
    seed: int = 0,
    options: ExplainOptions | None = None,
    progress: Progress | None = None,
    text_pairs: Sequence[str] | None = None,
) -> FaithfulnessReport:
    """Faithfulness of each method (default: all that fit the model) and of random rankings.

    Explains the predicted label of a random ``sample`` of the texts (all when None or when
    there are fewer). The random baseline averages ``random_repeats`` random rankings per text.
    ``text_pairs``: the second text of each input, for a model trained on text pairs; the
    rationale is ranked over the words of both texts, and deleting or keeping it edits both.
    ``progress`` gets a "faithfulness" task of one step per method explained, per method scored
    and per random ranking scored, and each method's own "explain (NAME)" task, text by text.
    """
    texts = check_texts(texts)
    pairs = None if text_pairs is None else _check_pairs(texts, text_pairs)
    rng = np.random.default_rng(seed)
    if sample is not None and len(texts) > sample:
        picked = sorted(rng.choice(len(texts), size=sample, replace=False).tolist())
        texts = [texts[i] for i in picked]
        pairs = None if pairs is None else [pairs[i] for i in picked]
    names = list(methods) if methods else methods_for(model)
    for name in names:
        get_explainer(name).check_model(model)
    explained: dict[str, list[Explanation]] = {}
    seconds: dict[str, float] = {}
    task = FAITHFULNESS_TASK
    if progress:
        progress.start(task, total=2 * len(names) + random_repeats)
        progress.message(
            f"faithfulness on {len(texts)} texts: explaining them with {', '.join(names)}, then "
            f"deleting / keeping each method's top words (and {random_repeats} random rankings)"
        )
    try:
        for name in names:
            start = time.perf_counter()
            explained[name] = explain_texts(
                model, texts, method=name, options=options, progress=progress, text_pairs=pairs
            )
            seconds[name] = (time.perf_counter() - start) / len(texts)
            if progress:
                progress.advance(task)
        return _score(
            model, texts, explained, seconds_per_text=seconds, random_repeats=random_repeats,
            seed=int(rng.integers(2**31)), step=(lambda: progress.advance(task)) if progress else None,
            text_pairs=pairs,
        )  # fmt: skip
    finally:
        if progress:
            progress.end(task)


def score_explanations(
    model: ExplainableModel,
    texts: Sequence[str],
    explained: Mapping[str, Sequence[Explanation]],
    *,
    seconds_per_text: Mapping[str, float] | None = None,
    random_repeats: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    text_pairs: Sequence[str] | None = None,
) -> FaithfulnessReport:
    """Faithfulness of explanations already computed (``explained[method][i]`` explains
    ``texts[i]``'s predicted label, with ``text_pairs[i]`` for a model trained on text pairs),
    and of ``random_repeats`` random rankings of the same words.

    ``progress`` gets a "faithfulness" task of one step per method and per random ranking.
    """
    task = FAITHFULNESS_TASK
    if progress:
        progress.start(task, total=len(explained) + random_repeats)
    try:
        return _score(
            model, texts, explained, seconds_per_text=seconds_per_text,
            random_repeats=random_repeats, seed=seed,
            step=(lambda: progress.advance(task)) if progress else None, text_pairs=text_pairs,
        )  # fmt: skip
    finally:
        if progress:
            progress.end(task)


def _score(
    model: ExplainableModel,
    texts: Sequence[str],
    explained: Mapping[str, Sequence[Explanation]],
    *,
    seconds_per_text: Mapping[str, float] | None,
    random_repeats: int,
    seed: int,
    step: Callable[[], None] | None,
    text_pairs: Sequence[str] | None = None,
) -> FaithfulnessReport:
    """Score each method's rankings and the random ones; ``step`` is called after each."""
    texts = check_texts(texts)
    pairs = None if text_pairs is None else _check_pairs(texts, text_pairs)
    tokenized = tokenize_words(model.tokenizer, texts, max_length=model.max_length, pairs=pairs)
    predicted = model.predict_ids(
        [t.input_ids for t in tokenized], token_types=[t.token_type_ids for t in tokenized]
    )
    targets = predicted.argmax(axis=1).tolist()
    results = []
    for name, explanations in explained.items():
        if len(explanations) != len(texts):
            raise ConfigError(
                f"{len(explanations)} {name} explanations for {len(texts)} texts; give one per text"
            )
        scored = faithfulness_of(
            model, tokenized, [e.scores for e in explanations], targets, method=name
        )
        seconds = (seconds_per_text or {}).get(name)
        results.append(dataclasses.replace(scored, seconds_per_text=seconds))
        if step:
            step()
    rng = np.random.default_rng(seed)
    random_runs = []
    for _ in range(random_repeats):
        rankings = [rng.random(t.n_words) for t in tokenized]
        random_runs.append(faithfulness_of(model, tokenized, rankings, targets, method=RANDOM))
        if step:
            step()
    results.append(_mean(random_runs))
    return FaithfulnessReport(texts=len(texts), bins=BINS, methods=tuple(results))


def _check_pairs(texts: Sequence[str], pairs: Sequence[str]) -> list[str]:
    """The second texts, one per text."""
    out = check_texts(pairs, "second text")
    if len(out) != len(texts):
        raise DataError(f"{len(texts)} texts but {len(out)} second texts; give one of each")
    return out


def _mean(runs: Sequence[MethodFaithfulness]) -> MethodFaithfulness:
    bins = list(runs[0].comprehensiveness_by_bin)
    return MethodFaithfulness(
        method=runs[0].method,
        comprehensiveness=float(np.mean([r.comprehensiveness for r in runs])),
        sufficiency=float(np.mean([r.sufficiency for r in runs])),
        comprehensiveness_by_bin={
            b: float(np.mean([r.comprehensiveness_by_bin[b] for r in runs])) for b in bins
        },
        sufficiency_by_bin={
            b: float(np.mean([r.sufficiency_by_bin[b] for r in runs])) for b in bins
        },
    )
