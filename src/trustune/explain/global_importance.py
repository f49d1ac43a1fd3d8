"""Across a data set: which words push the model towards each class (useful to spot shortcuts)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from trustune.explain.explainer import DEFAULT_METHOD, explain_texts
from trustune.explain.explanation import Explanation
from trustune.explain.model import ExplainableModel
from trustune.explain.registry import ExplainOptions
from trustune.progress import Progress

__all__ = [
    "ClassImportance",
    "GlobalImportance",
    "WordImportance",
    "aggregate_importance",
    "explain_dataset",
]


@dataclass(frozen=True)
class WordImportance:
    """One word's attribution towards a class over the texts predicted as that class.

    ``mean_attribution`` averages the word's score over its occurrences, ``count`` is the
    number of occurrences, ``frequency`` the share of the class's texts that contain it.
    """

    word: str
    mean_attribution: float
    count: int
    frequency: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "mean_attribution": round(self.mean_attribution, 6),
            "count": self.count,
            "frequency": round(self.frequency, 4),
        }


@dataclass(frozen=True)
class ClassImportance:
    """The top words of one class and how many texts were predicted as it."""

    label: str
    texts: int
    words: tuple[WordImportance, ...]


@dataclass(frozen=True)
class GlobalImportance:
    """Top words per predicted class, from ``method`` over ``texts`` texts."""

    method: str
    texts: int
    min_count: int
    classes: tuple[ClassImportance, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "texts": self.texts,
            "min_count": self.min_count,
            "classes": {
                c.label: {"texts": c.texts, "words": [w.to_dict() for w in c.words]}
                for c in self.classes
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlobalImportance:
        classes = tuple(
            ClassImportance(
                label=str(label),
                texts=int(entry["texts"]),
                words=tuple(
                    WordImportance(
                        word=str(w["word"]),
                        mean_attribution=float(w["mean_attribution"]),
                        count=int(w["count"]),
                        frequency=float(w["frequency"]),
                    )
                    for w in entry["words"]
                ),
            )
            for label, entry in data["classes"].items()
        )
        return cls(
            method=str(data["method"]), texts=int(data["texts"]),
            min_count=int(data["min_count"]), classes=classes,
        )  # fmt: skip


def aggregate_importance(
    explanations: Iterable[Explanation],
    *,
    labels: Iterable[Any],
    top_k: int = 15,
    min_count: int = 2,
) -> GlobalImportance:
    """Mean attribution of each word (lower-cased) over the texts explained for each class.

    Each explanation counts for the class it explains (its target; by default the prediction).
    Words seen fewer than ``min_count`` times are left out: one-off words rank high by chance.
    """
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    documents: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    texts: dict[str, int] = defaultdict(int)
    method = ""
    n = 0
    for explanation in explanations:
        n += 1
        method = explanation.method
        label = str(explanation.target)
        texts[label] += 1
        for word in {w.lower() for w in explanation.words}:
            documents[label][word] += 1
        for word, score in zip(explanation.words, explanation.scores, strict=True):
            key = word.lower()
            totals[label][key] += score
            counts[label][key] += 1
    classes = []
    for name in (str(label) for label in labels):
        ranked = sorted(
            (
                WordImportance(
                    word=word,
                    mean_attribution=total / counts[name][word],
                    count=counts[name][word],
                    frequency=documents[name][word] / texts[name],
                )
                for word, total in totals[name].items()
                if counts[name][word] >= min_count
            ),
            key=lambda w: (-w.mean_attribution, -w.count, w.word),
        )
        classes.append(ClassImportance(label=name, texts=texts[name], words=tuple(ranked[:top_k])))
    return GlobalImportance(method=method, texts=n, min_count=min_count, classes=tuple(classes))


def explain_dataset(
    model: ExplainableModel,
    texts: Sequence[str],
    *,
    method: str = DEFAULT_METHOD,
    options: ExplainOptions | None = None,
    top_k: int = 15,
    min_count: int = 2,
    progress: Progress | None = None,
) -> tuple[list[Explanation], GlobalImportance]:
    """Explain every text's prediction and aggregate the words into the top words of each class."""
    explanations = explain_texts(model, texts, method=method, options=options, progress=progress)
    importance = aggregate_importance(
        explanations, labels=model.labels, top_k=top_k, min_count=min_count
    )
    return explanations, importance
