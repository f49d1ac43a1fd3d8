"""Showing explanations: coloured words in the terminal, self-contained HTML heat maps.

Green is for the target class, red against it; the stronger the colour, the larger the score
relative to the text's largest. The HTML needs nothing else to open: inline CSS, no script, no URL.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup
from rich.text import Text

from trustune.explain.explanation import Explanation
from trustune.explain.faithfulness import RANDOM, FaithfulnessReport
from trustune.explain.global_importance import GlobalImportance

__all__ = [
    "PART_LABELS",
    "Segment",
    "parts",
    "render_card",
    "render_page",
    "render_section",
    "segments",
    "terminal_text",
]

_FOR = (22, 163, 74)  # green
_AGAINST = (220, 38, 38)  # red
_NEUTRAL = (128, 128, 128)


@dataclass(frozen=True)
class Segment:
    """A piece of the text: a scored word, or the characters between words (``score`` None)."""

    text: str
    score: float | None = None  # raw attribution
    weight: float = 0.0  # normalised to [-1, 1]

    @property
    def background(self) -> str:
        """CSS background for the HTML heat map."""
        r, g, b = _FOR if self.weight >= 0 else _AGAINST
        return f"rgba({r}, {g}, {b}, {abs(self.weight) * 0.85:.3f})"


# How the two texts of a pair are labelled where they are shown one after the other
PART_LABELS = ("first text", "second text")


def parts(explanation: Explanation) -> list[tuple[str | None, list[Segment]]]:
    """Each text with its segments: one unlabelled text, or the two texts of a pair, labelled."""
    if explanation.text_pair is None:
        return [(None, segments(explanation))]
    return [(PART_LABELS[i], segments(explanation, segment=i)) for i in (0, 1)]


def segments(explanation: Explanation, *, segment: int = 0) -> list[Segment]:
    """The whole text (of a pair: its ``segment``) cut into words (with their scores) and the
    gaps between them; colour strengths are relative to the strongest word of both texts."""
    out: list[Segment] = []
    cursor = 0
    text = explanation.text_of(segment)
    weights = explanation.normalized_scores()
    for (start, end), score, weight, part in zip(
        explanation.spans, explanation.scores, weights, explanation.segments, strict=True
    ):
        if part != segment:
            continue
        if start > cursor:
            out.append(Segment(text[cursor:start]))
        out.append(Segment(text[start:end], score, weight))
        cursor = max(cursor, end)
    if cursor < len(text):
        out.append(Segment(text[cursor:]))
    return out


def _mix(weight: float) -> str:
    """A terminal colour from grey to full green/red by the weight's size."""
    target = _FOR if weight >= 0 else _AGAINST
    a = min(abs(weight), 1.0)
    r, g, b = (round(n + (t - n) * a) for n, t in zip(_NEUTRAL, target, strict=True))
    return f"rgb({r},{g},{b})"


# 256 colours: four steps per side from greyish to full green / red (xterm palette numbers),
# chosen by hand because the nearest palette colour to the grey-to-green scale is mostly grey.
_FOR_256 = (108, 71, 35, 34)
_AGAINST_256 = (138, 131, 167, 160)
_NEUTRAL_256 = 244


def _eight_bit(weight: float) -> str:
    step = min(len(_FOR_256), math.ceil(min(abs(weight), 1.0) * len(_FOR_256)))
    if step == 0:
        return f"color({_NEUTRAL_256})"
    return f"color({(_FOR_256 if weight >= 0 else _AGAINST_256)[step - 1]})"


def _sixteen(weight: float) -> str:
    """16 colours: the sign only, and no colour for the weakest words (bold marks the strong)."""
    if abs(weight) < 0.25:
        return ""
    return "green" if weight >= 0 else "red"


# by rich's Console.color_system; None: the terminal shows no colour (rich prints no style)
_COLOURS: dict[str | None, Callable[[float], str]] = {
    "truecolor": _mix, "256": _eight_bit, "standard": _sixteen, "windows": _sixteen,
    None: lambda weight: "",
}  # fmt: skip


def terminal_text(explanation: Explanation, *, color_system: str | None = "truecolor") -> Text:
    """The text with each word coloured by its score (bold when strong).

    ``color_system`` is the console's (``Console.color_system``): a smooth scale in truecolor,
    four steps a side in 256 colours, green or red by sign in 16 colours, plain text without.
    """
    if color_system not in _COLOURS:
        known = ", ".join(str(name) for name in _COLOURS)
        raise ValueError(f"unknown color_system {color_system!r}; known: {known}")
    colour = _COLOURS[color_system]
    out = Text()
    for n, (label, pieces) in enumerate(parts(explanation)):
        if label is not None:  # a text pair: the two texts one after the other, labelled
            out.append(("\n" if n else "") + f"{label}: ", style="dim")
        for segment in pieces:
            if segment.score is None:
                out.append(segment.text)
            else:
                style = colour(segment.weight)
                if abs(segment.weight) >= 0.5:
                    style = f"{style} bold".strip()
                out.append(segment.text, style=style or None)
    return out


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("trustune.explain", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["signed"] = lambda v: f"{v:+.3g}"
    environment.filters["fixed"] = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"
    return environment


def _example_views(
    explanations: Sequence[Explanation], true_labels: Sequence[Any] | None
) -> list[dict[str, Any]]:
    truths = list(true_labels) if true_labels is not None else [None] * len(explanations)
    views = []
    for e, truth in zip(explanations, truths, strict=True):
        verdict = None
        if truth is not None:
            verdict = "right" if str(truth) == str(e.predicted) else "wrong"
        views.append(
            {
                "explanation": e,
                "segments": segments(e),
                "parts": parts(e),
                "top": e.top_words(5),
                "probability": e.probabilities.get(str(e.predicted)),
                "target_probability": e.probabilities.get(str(e.target)),
                "true_label": truth,
                "verdict": verdict,
            }
        )
    return views


def _importance_view(importance: GlobalImportance | None) -> list[dict[str, Any]]:
    if importance is None:
        return []
    views = []
    for entry in importance.classes:
        top = max((abs(w.mean_attribution) for w in entry.words), default=0.0)
        views.append(
            {
                "label": entry.label,
                "texts": entry.texts,
                "rows": [
                    {
                        "word": w,
                        "width": 0.0 if top == 0 else 100 * abs(w.mean_attribution) / top,
                        "colour": "#16a34a" if w.mean_attribution >= 0 else "#dc2626",
                    }
                    for w in entry.words
                ],
            }
        )
    return views


def _faithfulness_view(report: FaithfulnessReport | None) -> list[dict[str, Any]]:
    if report is None:
        return []
    try:
        random = report.get(RANDOM).comprehensiveness
    except KeyError:
        random = None
    return [
        {
            "entry": m,
            "ratio": None
            if random is None or random <= 0 or m.method == RANDOM
            else m.comprehensiveness / random,
        }
        for m in report.methods
    ]


def _context(
    examples: Sequence[Explanation],
    true_labels: Sequence[Any] | None,
    importance: GlobalImportance | None,
    faithfulness: FaithfulnessReport | None,
    notes: Sequence[str],
) -> dict[str, Any]:
    return {
        "examples": _example_views(examples, true_labels),
        "importance": _importance_view(importance),
        "importance_method": importance.method if importance else None,
        "importance_texts": importance.texts if importance else 0,
        "importance_min_count": importance.min_count if importance else 0,
        "faithfulness": _faithfulness_view(faithfulness),
        "faithfulness_texts": faithfulness.texts if faithfulness else 0,
        "bins": list(faithfulness.bins) if faithfulness else [],
        "notes": list(notes),
    }


def render_page(
    explanations: Sequence[Explanation],
    *,
    title: str = "Explanations",
    true_labels: Sequence[Any] | None = None,
    importance: GlobalImportance | None = None,
    faithfulness: FaithfulnessReport | None = None,
) -> str:
    """A self-contained HTML page: one heat map per explanation, and the aggregates if given.

    ``true_labels`` (one per explanation, None where unknown) mark each row right or wrong,
    in words as well as colour, and the page opens with how many were right.
    """
    context = _context(explanations, true_labels, importance, faithfulness, ())
    judged = [v["verdict"] for v in context["examples"] if v["verdict"] is not None]
    verdicts = {"judged": len(judged), "right": judged.count("right")}
    page = _environment().get_template("page.html.j2")
    return page.render(title=title, verdicts=verdicts, **context)


def render_card(explanation: Explanation, *, true_label: Any = None) -> Markup:
    """One explanation's heat map as a self-contained HTML fragment (Jupyter, web pages)."""
    [view] = _example_views([explanation], [true_label])
    return Markup(_environment().get_template("card.html.j2").render(view=view))


def render_section(
    examples: Sequence[Explanation],
    *,
    true_labels: Sequence[Any] | None = None,
    importance: GlobalImportance | None = None,
    faithfulness: FaithfulnessReport | None = None,
    notes: Sequence[str] = (),
) -> Markup:
    """The "Explanations" section of a run's report.html, as an HTML fragment.

    ``true_labels`` (one per example, None where unknown) mark examples right or wrong.
    """
    context = _context(examples, true_labels, importance, faithfulness, notes)
    return Markup(_environment().get_template("section.html.j2").render(**context))
