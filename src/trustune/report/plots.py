"""Plots of a run as PNG data URIs, drawn on bare matplotlib Figures (no pyplot global state)."""

from __future__ import annotations

import base64
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from trustune.report.fonts import LabelFonts, label_fonts

__all__ = [
    "class_distribution",
    "confusion_matrix",
    "importance_bars",
    "optimization_history",
    "pr_curves",
    "predicted_vs_true",
    "reliability_diagram",
    "residual_histogram",
    "roc_curves",
    "speed_accuracy",
    "training_curves",
]

_DPI = 144  # drawn at twice the CSS size so the images stay sharp on high-density screens
_MAX_LEGEND = 12  # beyond this many classes a legend hides the curves
_GRID = "#e5e7eb"
_DIAGONAL: dict[str, Any] = {"color": "#9ca3af", "linestyle": "--", "linewidth": 1.0}


def _number(value: Any) -> float | None:
    """The value as a finite float, or None for anything else (None, NaN, bools, strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _numbers(values: Any) -> list[float] | None:
    """A list of finite floats, or None when the input is not one."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        return None
    numbers = [_number(v) for v in values]
    clean = [n for n in numbers if n is not None]
    return clean if len(clean) == len(numbers) and clean else None


def _plain(text: object) -> str:
    """A label matplotlib draws literally: no mathtext, not hidden by a leading underscore."""
    label = str(text).replace("$", r"\$")
    return " " + label if label.startswith("_") else label


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of the given size in inches with one styled axes."""
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    return figure, _style(figure.add_subplot())


def _style(axes: Axes) -> Axes:
    """Quiet axes: no top/right spines, a light grid behind the data."""
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(True, color=_GRID, linewidth=0.8)
    axes.set_axisbelow(True)
    axes.tick_params(labelsize=8)
    return axes


def _data_uri(figure: Figure) -> str:
    """The figure encoded as a base64 PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _legend(axes: Axes, count: int, families: Sequence[str] | None = None) -> None:
    """A small legend, left out when there are too many entries to read."""
    if 0 < count <= _MAX_LEGEND:
        prop: dict[str, Any] = {"size": 7}
        if families:
            prop["family"] = list(families)
        axes.legend(prop=prop, frameon=False, loc="best")


def training_curves(history: Any) -> str | None:
    """Train/validation loss and the validation scores over the optimizer step (accuracy and
    macro F1 of a classifier, Spearman and Pearson of a regressor: whichever were recorded)."""
    if not isinstance(history, Sequence) or not history:
        return None
    rows = [row for row in history if isinstance(row, Mapping)]
    panels = (
        ("loss", (("train_loss", "train loss"), ("val_loss", "validation loss"))),
        (
            "score",
            (
                ("val_accuracy", "validation accuracy"),
                ("val_f1_macro", "validation macro F1"),
                ("val_spearman", "validation Spearman"),
                ("val_pearson", "validation Pearson"),
            ),
        ),
    )
    series: list[tuple[str, list[tuple[str, list[float], list[float]]]]] = []
    for ylabel, keys in panels:
        lines = []
        for key, label in keys:
            points = [(_number(r.get("step")), _number(r.get(key))) for r in rows]
            pairs = [(x, y) for x, y in points if x is not None and y is not None]
            if pairs:
                lines.append((label, [x for x, _ in pairs], [y for _, y in pairs]))
        if lines:
            series.append((ylabel, lines))
    if not series:
        return None
    figure = Figure(figsize=(4.2 * len(series), 2.8), dpi=_DPI, layout="constrained")
    for index, (ylabel, lines) in enumerate(series, start=1):
        axes = _style(figure.add_subplot(1, len(series), index))
        for label, steps, values in lines:
            axes.plot(steps, values, marker="o", markersize=3, linewidth=1.5, label=label)
        axes.set_xlabel("step", fontsize=8)
        axes.set_ylabel(ylabel, fontsize=8)
        _legend(axes, len(lines))
    return _data_uri(figure)


def confusion_matrix(matrix: Any, *, fonts: LabelFonts | None = None) -> str | None:
    """A heat map of the confusion matrix (rows true, columns predicted) with the counts."""
    if not isinstance(matrix, Mapping):
        return None
    labels = matrix.get("labels")
    raw_rows = matrix.get("matrix")
    if not isinstance(labels, Sequence) or not isinstance(raw_rows, Sequence) or not labels:
        return None
    rows = [_numbers(row) for row in raw_rows]
    size = len(labels)
    if len(rows) != size or any(row is None or len(row) != size for row in rows):
        return None
    counts = [row for row in rows if row is not None]
    side = min(9.0, max(3.4, 0.5 * size + 1.8))
    figure, axes = _figure(side + 0.8, side)
    axes.grid(False)
    axes.spines[:].set_visible(False)
    image = axes.imshow(counts, cmap="Blues", vmin=0)
    highest = max(max(row) for row in counts) or 1.0
    if size <= 25:
        fontsize = 9 if size <= 8 else 6
        for i, row in enumerate(counts):
            for j, count in enumerate(row):
                color = "white" if count > highest * 0.6 else "#111827"
                text = f"{count:.0f}" if count == int(count) else f"{count:.2f}"
                axes.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=color)
    fonts = fonts or label_fonts(labels)
    names = [_plain(fonts.text(label)) for label in labels]
    family = list(fonts.families)
    axes.set_xticks(
        range(size), names, rotation=45 if size > 3 else 0, ha="right" if size > 3 else "center",
        fontfamily=family,
    )  # fmt: skip
    axes.set_yticks(range(size), names, fontfamily=family)
    axes.set_xlabel("predicted", fontsize=8)
    axes.set_ylabel("true", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8).ax.tick_params(labelsize=7)
    return _data_uri(figure)


def _curves(
    curves: Any, kind: str, x_key: str, y_key: str
) -> list[tuple[str, list[float], list[float]]]:
    """The (class, x, y) series of one curve kind, skipping malformed entries."""
    if not isinstance(curves, Mapping) or not isinstance(curves.get(kind), Mapping):
        return []
    series = []
    for name, curve in curves[kind].items():
        if not isinstance(curve, Mapping):
            continue
        xs, ys = _numbers(curve.get(x_key)), _numbers(curve.get(y_key))
        if xs is not None and ys is not None and len(xs) == len(ys):
            series.append((str(name), xs, ys))
    return series


def _curve_plot(
    series: list[tuple[str, list[float], list[float]]], xlabel: str, ylabel: str, *,
    diagonal: bool, fonts: LabelFonts | None,
) -> str | None:  # fmt: skip
    """One square axes with a line per class."""
    if not series:
        return None
    fonts = fonts or label_fonts(name for name, _, _ in series)
    series = [(_plain(fonts.text(name)), xs, ys) for name, xs, ys in series]
    figure, axes = _figure(3.6, 3.4)
    if diagonal:
        axes.plot([0, 1], [0, 1], **_DIAGONAL)
    for name, xs, ys in series:
        axes.plot(xs, ys, linewidth=1.5, label=name)
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel(xlabel, fontsize=8)
    axes.set_ylabel(ylabel, fontsize=8)
    _legend(axes, len(series), fonts.families)
    return _data_uri(figure)


def roc_curves(curves: Any, *, fonts: LabelFonts | None = None) -> str | None:
    """ROC curves, one per (positive or one-vs-rest) class, with the chance diagonal."""
    series = _curves(curves, "roc", "fpr", "tpr")
    return _curve_plot(
        series, "false positive rate", "true positive rate", diagonal=True, fonts=fonts
    )


def pr_curves(curves: Any, *, fonts: LabelFonts | None = None) -> str | None:
    """Precision-recall curves, one per (positive or one-vs-rest) class."""
    series = _curves(curves, "pr", "recall", "precision")
    return _curve_plot(series, "recall", "precision", diagonal=False, fonts=fonts)


def reliability_diagram(reliability: Any) -> str | None:
    """Accuracy against confidence per bin, with the diagonal of perfect calibration."""
    bins = reliability.get("bins") if isinstance(reliability, Mapping) else None
    if not isinstance(bins, Sequence):
        return None
    drawn = []
    for item in bins:
        if not isinstance(item, Mapping):
            continue
        lower, upper = _number(item.get("lower")), _number(item.get("upper"))
        accuracy, count = _number(item.get("accuracy")), _number(item.get("count"))
        if lower is None or upper is None or accuracy is None or not count:
            continue
        drawn.append((lower, upper, accuracy, _number(item.get("confidence"))))
    if not drawn:
        return None
    figure, axes = _figure(3.6, 3.4)
    axes.plot([0, 1], [0, 1], label="perfect calibration", **_DIAGONAL)
    lefts = [lower for lower, _, _, _ in drawn]
    widths = [upper - lower for lower, upper, _, _ in drawn]
    heights = [accuracy for _, _, accuracy, _ in drawn]
    axes.bar(
        lefts,
        heights,
        width=widths,
        align="edge",
        color="#3b82f6",
        alpha=0.75,
        edgecolor="white",
        label="accuracy",
    )
    centers = [(c, a) for _, _, a, c in drawn if c is not None]
    if centers:
        axes.plot(
            [c for c, _ in centers],
            [a for _, a in centers],
            "o",
            color="#1e3a8a",
            markersize=3,
            label="mean confidence",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("confidence", fontsize=8)
    axes.set_ylabel("accuracy", fontsize=8)
    _legend(axes, 3 if centers else 2)
    return _data_uri(figure)


def class_distribution(
    class_counts: Any, labels: Sequence[str] = (), *, fonts: LabelFonts | None = None
) -> str | None:
    """Horizontal bars of the examples per class, in label order when labels are given."""
    if not isinstance(class_counts, Mapping) or not class_counts:
        return None
    order = [label for label in labels if label in class_counts]
    order += [label for label in class_counts if label not in order]
    counts = [_number(class_counts[label]) or 0.0 for label in order]
    figure, axes = _figure(5.0, min(8.0, max(1.6, 0.32 * len(order) + 0.9)))
    axes.grid(True, axis="x", color=_GRID, linewidth=0.8)
    axes.grid(False, axis="y")
    positions = range(len(order))
    axes.barh(positions, counts, color="#3b82f6")
    fonts = fonts or label_fonts(order)
    axes.set_yticks(
        positions, [_plain(fonts.text(label)) for label in order], fontfamily=list(fonts.families)
    )
    axes.invert_yaxis()  # first label on top, as in the tables
    axes.set_xlabel("training examples", fontsize=8)
    if len(order) <= 30:
        for position, count in zip(positions, counts, strict=True):
            axes.text(count, position, f" {count:.0f}", va="center", fontsize=7)
    axes.margins(x=0.12)
    return _data_uri(figure)


def predicted_vs_true(points: Any) -> str | None:
    """Each validation row's predicted score against its true score, with the line of perfect
    predictions."""
    if not isinstance(points, Mapping):
        return None
    true, predicted = _numbers(points.get("true")), _numbers(points.get("predicted"))
    if true is None or predicted is None or len(true) != len(predicted):
        return None
    figure, axes = _figure(3.8, 3.6)
    low, high = min(*true, *predicted), max(*true, *predicted)
    pad = (high - low) * 0.04 or 0.5
    axes.plot([low - pad, high + pad], [low - pad, high + pad], label="perfect", **_DIAGONAL)
    size = 12 if len(true) <= 200 else 6
    axes.scatter(true, predicted, s=size, color="#3b82f6", alpha=0.6, linewidths=0)
    axes.set_xlim(low - pad, high + pad)
    axes.set_ylim(low - pad, high + pad)
    axes.set_aspect("equal")
    axes.set_xlabel("true score", fontsize=8)
    axes.set_ylabel("predicted score", fontsize=8)
    return _data_uri(figure)


def residual_histogram(residuals: Any) -> str | None:
    """How far predictions fall from the truth (predicted − true), as a histogram, zero marked."""
    if not isinstance(residuals, Mapping):
        return None
    counts, edges = _numbers(residuals.get("counts")), _numbers(residuals.get("edges"))
    if counts is None or edges is None or len(edges) != len(counts) + 1:
        return None
    figure, axes = _figure(4.2, 3.0)
    axes.grid(False, axis="x")
    widths = [right - left for left, right in itertools.pairwise(edges)]
    axes.bar(edges[:-1], counts, width=widths, align="edge", color="#3b82f6", edgecolor="white")
    axes.axvline(0.0, **_DIAGONAL)
    axes.set_xlabel("residual (predicted − true)", fontsize=8)
    axes.set_ylabel("rows", fontsize=8)
    return _data_uri(figure)


def optimization_history(trials: Any, *, metric: str = "objective") -> str | None:
    """A study's trials in order: each finished trial's value (pruned ones at their last
    report, hollow) and the best so far."""
    if not isinstance(trials, Sequence):
        return None
    done = [(t.get("number"), _number(t.get("metric_value")), t.get("state")) for t in trials
            if isinstance(t, Mapping)]  # fmt: skip
    points = [(n, v, s) for n, v, s in done if isinstance(n, int) and v is not None]
    if not points:
        return None
    figure, axes = _figure(4.6, 2.8)
    complete = [(n, v) for n, v, s in points if s == "complete"]
    others = [(n, v) for n, v, s in points if s != "complete"]
    if complete:
        axes.plot([n for n, _ in complete], [v for _, v in complete], "o", markersize=4,
                  label="trial")  # fmt: skip
        best, line = None, []
        lower = metric in ("loss", "mse", "mae")
        for n, v in complete:
            best = v if best is None or (v < best if lower else v > best) else best
            line.append((n, best))
        axes.step([n for n, _ in line], [b for _, b in line], where="post", linewidth=1.5,
                  label="best so far")  # fmt: skip
    if others:
        axes.plot([n for n, _ in others], [v for _, v in others], "o", markersize=4,
                  markerfacecolor="none", label="pruned")  # fmt: skip
    axes.set_xlabel("trial", fontsize=8)
    axes.set_ylabel(_plain(metric), fontsize=8)
    _legend(axes, 3)
    return _data_uri(figure)


def importance_bars(importances: Any) -> str | None:
    """Horizontal bars of parameter importances (largest on top)."""
    if not isinstance(importances, Mapping) or not importances:
        return None
    items = sorted(((str(k), _number(v) or 0.0) for k, v in importances.items()),
                   key=lambda kv: kv[1])  # fmt: skip
    figure, axes = _figure(4.6, 0.5 + 0.35 * len(items))
    axes.barh([_plain(k) for k, _ in items], [v for _, v in items], color="#3b82f6")
    axes.set_xlabel("importance (fANOVA: share of the variance of the objective)", fontsize=8)
    return _data_uri(figure)


def speed_accuracy(points: Any, *, metric: str = "metric") -> str | None:
    """Each compared run's throughput against its main metric, named: up and to the right is
    faster and better (``trustune compare``)."""
    if not isinstance(points, Sequence):
        return None
    drawn = []
    for point in points:
        if not isinstance(point, Mapping):
            continue
        speed, value = _number(point.get("throughput_per_s")), _number(point.get("value"))
        if speed is not None and value is not None and speed > 0:
            drawn.append((str(point.get("name", "")), speed, value))
    if not drawn:
        return None
    fonts = label_fonts(name for name, _, _ in drawn)
    figure, axes = _figure(4.6, 3.2)
    for index, (name, speed, value) in enumerate(drawn):
        axes.plot(speed, value, "o", markersize=6, color="#1e3a8a" if index == 0 else "#3b82f6")
        axes.annotate(
            _plain(fonts.text(name)), (speed, value), textcoords="offset points", xytext=(5, 4),
            fontsize=7, fontfamily=list(fonts.families),
        )  # fmt: skip
    speeds = [speed for _, speed, _ in drawn]
    if max(speeds) / min(speeds) > 20:  # int8 next to fp32 on a fast CPU: keep both readable
        axes.set_xscale("log")
    axes.margins(x=0.2, y=0.2)
    axes.set_xlabel("throughput at batch 32 (texts/s)", fontsize=8)
    axes.set_ylabel(_plain(metric), fontsize=8)
    return _data_uri(figure)
