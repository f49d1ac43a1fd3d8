"""The result of explaining one prediction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["COMPLETENESS_ATOL", "COMPLETENESS_RTOL", "Explanation"]

# When integrated gradients' scores fail to add up (Sundararajan et al. 2017, section 3: check
# that the attributions add up to f(x) - f(baseline) and, if not, use more steps; they found
# 20-300 steps enough to be "within 5%"): the completeness error is flagged when it exceeds
# 5% of the change the scores explain, plus 0.001 (the precision probabilities are shown at),
# so that a change near zero is not flagged for rounding noise.
COMPLETENESS_RTOL = 0.05
COMPLETENESS_ATOL = 0.001


@dataclass(frozen=True)
class Explanation:
    """Why the model gave ``target`` its probability for ``text``, word by word.

    ``scores[i]`` is the signed contribution of ``words[i]`` to the target class's probability:
    positive pushes towards the target, negative against it (``saliency`` is magnitude only).
    ``spans[i]`` is the (start, end) of the word in ``text``. For integrated gradients ``delta``
    is the completeness error: sum(scores) - (p(x) - p(baseline)), in probability units.
    When it is too large, :attr:`completeness_warning` says so (see ``COMPLETENESS_RTOL``).
    ``truncated`` means the text was longer than the model's max length; the last
    ``dropped_words`` words were not seen and get no score.

    For a text pair, ``text_pair`` is the second text and ``segments[i]`` says which text
    ``words[i]`` is in (0: ``text``, 1: ``text_pair``); its span is in that text. For a single
    text ``text_pair`` is None and every segment is 0. For a regression the target is
    ``"score"`` and the scores explain the predicted score (in its unit), not a probability.
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
    text_pair: str | None = None
    segments: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.segments:  # a single text (or a stored explanation from before pairs)
            object.__setattr__(self, "segments", (0,) * len(self.words))
        if len(self.segments) != len(self.words):
            raise ValueError(f"{len(self.segments)} segments for {len(self.words)} words")

    def text_of(self, segment: int) -> str:
        """The text that words of ``segment`` are in (0: ``text``, 1: ``text_pair``)."""
        if segment == 0:
            return self.text
        if segment == 1 and self.text_pair is not None:
            return self.text_pair
        raise ValueError(f"this explanation has no text of segment {segment}")

    @property
    def explained_change(self) -> float | None:
        """p(target | text) - p(target | baseline), what the scores should add up to (IG only)."""
        return None if self.delta is None else sum(self.scores) - self.delta

    @property
    def completeness_warning(self) -> str | None:
        """Why the scores cannot be taken at face value, when the completeness error is too large.

        Flagged when ``|delta| > COMPLETENESS_RTOL * |explained_change| + COMPLETENESS_ATOL``.
        """
        change = self.explained_change
        if self.delta is None or change is None:
            return None
        if not math.isfinite(self.delta):
            return (
                "the completeness error is not a finite number; the scores are unreliable "
                "(explain again in fp32 or with more integration steps)"
            )
        allowed = COMPLETENESS_RTOL * abs(change) + COMPLETENESS_ATOL
        if abs(self.delta) <= allowed:
            return None
        share = f"{abs(self.delta) / abs(change):.0%} of it" if change else "and it is 0"
        return (
            f"the scores add up to {sum(self.scores):+.3f}, not to the change they explain, "
            f"p(text) - p(baseline) = {change:+.3f}: completeness error {self.delta:+.3g} "
            f"({share}; tolerated: {COMPLETENESS_RTOL:.0%} of it + {COMPLETENESS_ATOL:g}). "
            "Explain again with more integration steps (n_steps, --steps)"
        )

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
            "completeness_warning": self.completeness_warning,
            "truncated": self.truncated,
            "dropped_words": self.dropped_words,
            "text_pair": self.text_pair,
            "segments": list(self.segments),
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
            text_pair=None if data.get("text_pair") is None else str(data["text_pair"]),
            segments=tuple(int(s) for s in data.get("segments") or ()),
        )

    def _repr_html_(self) -> str:
        """The heat map of the text in Jupyter (self-contained, escaped HTML)."""
        from trustune.explain.render import render_card

        return str(render_card(self))
