"""What the report and the model card show of a text-regression run: the target, Pearson,
Spearman, MSE, MAE and R², predicted against true scores, the residuals and the error by target
range."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from trustune.manifest import Manifest
from trustune.report import plots
from trustune.report.model_card import (
    CardScore,
    CardTask,
    md_code,
    md_text,
    md_unit,
    register_card,
)
from trustune.report.sections import SectionInput, Slot, register_section
from trustune.report.templating import environment, macro
from trustune.values import finite
from trustune.values import mapping as as_mapping

__all__ = ["METRIC_ROWS", "TASK"]

TASK = "text-regression"
_TEMPLATE = "_regression.html.j2"
# (name, metrics.json key, filter): correlations and R² are unitless, errors in the target's unit
METRIC_ROWS = (
    ("Pearson", "pearson", "metric"),
    ("Spearman", "spearman", "metric"),
    ("MSE", "mse", "short"),
    ("MAE", "mae", "short"),
    ("R²", "r2", "metric"),
    ("Loss (on standardised scores)", "loss", "metric"),
)


def _target(given: SectionInput) -> Markup:
    return macro(_TEMPLATE, "target")(given.manifest.target)  # None: "not available"


def _card(given: SectionInput) -> Markup:
    return macro(_TEMPLATE, "card")(given.result)


def _distribution(given: SectionInput) -> Markup:
    splits = [(name, split.target_stats) for name, split in given.manifest.data.splits()]
    splits = [(name, stats) for name, stats in splits if stats]
    return macro(_TEMPLATE, "distribution")(splits)


def _metrics(given: SectionInput) -> Markup:
    filters = environment().filters
    rows = [(name, filters[kind](given.result.get(key))) for name, key, kind in METRIC_ROWS]
    return macro(_TEMPLATE, "metrics")(rows)


def _scatter(given: SectionInput) -> Markup:
    points = as_mapping(given.result.get("points"))
    drawn = points.get("true")
    shown = len(drawn) if isinstance(drawn, list) else None
    rows = finite(given.result.get("rows")) or finite(
        as_mapping(given.result.get("data")).get("rows")
    )
    return macro(_TEMPLATE, "scatter")(plots.predicted_vs_true(points), shown, rows)


def _residuals(given: SectionInput) -> Markup:
    return macro(_TEMPLATE, "residuals")(plots.residual_histogram(given.result.get("residuals")))


def _by_range(given: SectionInput) -> Markup:
    ranges: list[dict[str, Any]] = []
    raw = given.result.get("by_range")
    for bucket in raw if isinstance(raw, list) else []:
        bucket = as_mapping(bucket)
        bounds = bucket.get("range")
        if isinstance(bounds, list) and len(bounds) == 2:
            ranges.append({**bucket, "low": bounds[0], "high": bounds[1]})
    return macro(_TEMPLATE, "by_range")(ranges)


_ONLY = (TASK,)
register_section("target", title="Target", order=10, builder=_target, slot=Slot.HEADER, tasks=_ONLY)
register_section(
    "regression-scores", title="Scores", order=10, builder=_card, slot=Slot.CARD, tasks=_ONLY
)
register_section(
    "target-distribution", title="Target distribution", order=10, builder=_distribution,
    slot=Slot.DATA, tasks=_ONLY,
)  # fmt: skip
register_section(
    "regression-metrics", title="Metrics", order=10, builder=_metrics, slot=Slot.RESULT,
    tasks=_ONLY,
)  # fmt: skip
register_section(
    "predicted-vs-true", title="Predicted vs true", order=20, builder=_scatter,
    slot=Slot.RESULT, tasks=_ONLY,
)  # fmt: skip
register_section(
    "residuals", title="Residuals", order=30, builder=_residuals, slot=Slot.RESULT, tasks=_ONLY
)
register_section(
    "error-by-range", title="Error by target range", order=40, builder=_by_range,
    slot=Slot.RESULT, tasks=_ONLY,
)  # fmt: skip


def _card_context(manifest: Manifest) -> dict[str, Any]:
    target = manifest.target.to_dict() if manifest.target is not None else {}
    splits = []
    for name, split in manifest.data.splits():
        stats = split.target_stats
        if stats:
            splits.append(
                {
                    "name": md_text(name),
                    **{k: md_unit(stats.get(k)) for k in ("mean", "std", "min", "max")},
                }
            )
    return {
        "target": {
            "column": md_code(target.get("column") or manifest.label_column),
            "folded": bool(target.get("folded")),
            "statistics_from": md_text(target.get("statistics_from")),
            "loss": md_text(target.get("loss")),
            **{k: md_unit(target.get(k)) for k in ("mean", "std", "min", "max")},
        },
        "target_splits": splits,
    }


# The Hugging Face Hub knows no regression pipeline: `text-classification` runs a one-output
# model and returns its raw score (GLUE STS-B results are filed under it too).
register_card(
    TASK,
    CardTask(
        template="model_card_regression.md.j2",
        pipeline_tag="text-classification",
        tags=(TASK, "regression"),
        index_task=("text-classification", "Text regression"),
        scores=(
            CardScore("spearman", "Spearman", "spearmanr", "Spearman"),
            CardScore("pearson", "Pearson", "pearsonr", "Pearson"),
            CardScore("mse", "MSE", "mse", "MSE", shown=md_unit),
            CardScore("mae", "MAE", "mae", "MAE", shown=md_unit),
            CardScore("r2", "R²", "r_squared", "R²"),
        ),
        context=_card_context,
    ),
)
