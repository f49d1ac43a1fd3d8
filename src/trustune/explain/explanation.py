"""The result of explaining one prediction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Explanation"]


@dataclass(frozen=True)
class Explanation:
    """Why the model gave ``target`` its probability for ``text``, word by word.

    ``scores[i]`` is the signed contribution of ``words[i]`` to the target class's probability:
    positive pushes towards the target, negative against it (``saliency`` is magnitude only).
    ``spans[i]`` is the (start, end) of the word in ``text``. For integrated gradients ``delta``
    is the completeness error: sum(scores) - (p(x) - p(baseline)), in probability units.
    ``truncated`` means the text was longer than the model's max length; the last
    ``dropped_words`` words were not seen and get no score.
    """

    text: str
    words: tuple[str, ...]
    scores: tuple[float, ...]
    spans: tuple[tuple[int, int], ...]
    target: int | str
    predicted: int | str
    probabilities: dict[str, float]
    method: str
    delta: float | None = None
    truncated: bool = False
    dropped_words: int = 0

    def normalized_scores(self) -> list[float]:
        """Scores divided by the largest magnitude, in [-1, 1], for display."""
        top = max((abs(s) for s in self.scores), default=0.0)
        return [s / top if top > 0 else 0.0 for s in self.scores]

    def top_words(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` words with the highest scores (most support for the target)."""
        ranked = sorted(zip(self.words, self.scores, strict=True), key=lambda p: -p[1])
        return ranked[:k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "method": self.method,
            "target": self.target,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "words": list(self.words),
            "scores": [round(s, 6) for s in self.scores],
            "spans": [list(span) for span in self.spans],
            "delta": None if self.delta is None else round(self.delta, 6),
            "truncated": self.truncated,
            "dropped_words": self.dropped_words,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        """The inverse of :meth:`to_dict` (for explanations stored in a run)."""
        return cls(
            text=str(data["text"]),
            words=tuple(str(w) for w in data["words"]),
            scores=tuple(float(s) for s in data["scores"]),
            spans=tuple((int(a), int(b)) for a, b in data["spans"]),
            target=data["target"],
            predicted=data["predicted"],
            probabilities={str(k): float(v) for k, v in data["probabilities"].items()},
            method=str(data["method"]),
            delta=None if data.get("delta") is None else float(data["delta"]),
            truncated=bool(data.get("truncated", False)),
            dropped_words=int(data.get("dropped_words", 0)),
        )
