"""What the report and the model card show of a text-classification run: labels, class counts,
accuracy and the other scores, the confusion matrix, ROC and precision-recall curves,
calibration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from trustune.manifest import Manifest
from trustune.report import plots
from trustune.report.model_card import CardScore, CardTask, md_code, md_count, register_card
from trustune.report.sections import SectionInput, Slot, register_section
from trustune.report.templating import macro
from trustune.values import mapping as as_mapping

__all__ = ["METRIC_ROWS", "TASK"]

TASK = "text-classification"
_TEMPLATE = "_classification.html.j2"
METRIC_ROWS = (
    ("Accuracy", "accuracy"),
    ("Precision (macro)", "precision_macro"),
    ("Recall (macro)", "recall_macro"),
    ("F1 (macro)", "f1_macro"),
    ("Precision (weighted)", "precision_weighted"),
    ("Recall (weighted)", "recall_weighted"),
    ("F1 (weighted)", "f1_weighted"),
    ("ROC-AUC", "roc_auc"),
    ("PR-AUC", "pr_auc"),
    ("Expected calibration error", "ece"),
)


def _in_label_order(keys: Sequence[str], labels: Sequence[str]) -> list[str]:
    """Keys ordered as the run's labels, unknown keys after them."""
    ordered = [label for label in labels if label in keys]
    return ordered + [key for key in keys if key not in ordered]


def _labels(given: SectionInput) -> Markup:
    return macro(_TEMPLATE, "labels")(list(given.labels))


def _card(given: SectionInput) -> Markup:
    return macro(_TEMPLATE, "card")(given.result)


def _class_counts(given: SectionInput) -> Markup:
    data = given.manifest.data
    splits = data.splits()
    keys = [key for _, split in splits for key in split.class_counts]
    rows = [
        (label, [split.class_counts.get(label) for _, split in splits])
        for label in _in_label_order(list(dict.fromkeys(keys)), given.labels)
    ]
    train_counts = data.train.class_counts if data.train is not None else {}
    chart = plots.class_distribution(train_counts, given.labels, fonts=given.fonts)
    return macro(_TEMPLATE, "class_counts")(
        chart, rows, [name for name, _ in splits], given.fonts.key()
    )


def _metrics(given: SectionInput) -> Markup:
    per_class = as_mapping(given.result.get("per_class"))
    rows = [
        (label, as_mapping(per_class[label]))
        for label in _in_label_order(list(per_class), given.labels)
    ]
    return macro(_TEMPLATE, "metrics")(given.result, METRIC_ROWS, rows)


def _confusion(given: SectionInput) -> Markup:
    uri = plots.confusion_matrix(given.result.get("confusion_matrix"), fonts=given.fonts)
    return macro(_TEMPLATE, "confusion")(uri, given.fonts.key())


def _curves(given: SectionInput) -> Markup:
    curves = given.result.get("curves")
    return macro(_TEMPLATE, "curves")(
        plots.roc_curves(curves, fonts=given.fonts),
        plots.pr_curves(curves, fonts=given.fonts),
        given.fonts.key(),
    )


def _calibration(given: SectionInput) -> Markup:
    return macro(_TEMPLATE, "calibration")(
        plots.reliability_diagram(given.result.get("reliability"))
    )


_ONLY = (TASK,)
register_section("labels", title="Labels", order=10, builder=_labels, slot=Slot.HEADER, tasks=_ONLY)
register_section(
    "classification-scores", title="Scores", order=10, builder=_card, slot=Slot.CARD, tasks=_ONLY
)
register_section(
    "class-counts", title="Class counts", order=10, builder=_class_counts, slot=Slot.DATA,
    tasks=_ONLY,
)  # fmt: skip
register_section(
    "classification-metrics", title="Metrics", order=10, builder=_metrics, slot=Slot.RESULT,
    tasks=_ONLY,
)  # fmt: skip
register_section(
    "confusion-matrix", title="Confusion matrix", order=20, builder=_confusion,
    slot=Slot.RESULT, tasks=_ONLY,
)  # fmt: skip
register_section(
    "roc-pr-curves", title="ROC and precision-recall curves", order=30, builder=_curves,
    slot=Slot.RESULT, tasks=_ONLY,
)  # fmt: skip
register_section(
    "calibration", title="Calibration", order=40, builder=_calibration, slot=Slot.RESULT,
    tasks=_ONLY,
)  # fmt: skip


def _card_context(manifest: Manifest) -> dict[str, Any]:
    train = manifest.data.train
    return {
        "labels": [md_code(label) for label in manifest.labels or ()],
        "class_counts": [
            (md_code(label), md_count(number))
            for label, number in (train.class_counts if train is not None else {}).items()
        ],
    }


register_card(
    TASK,
    CardTask(
        template="model_card_classification.md.j2",
        pipeline_tag="text-classification",
        tags=(TASK,),
        index_task=(TASK, "Text classification"),
        scores=(
            CardScore("accuracy", "accuracy", "accuracy", "Accuracy"),
            CardScore("f1_macro", "macro F1", "f1", "F1 (macro)", config="macro"),
            CardScore("roc_auc", "ROC-AUC", "roc_auc", "ROC-AUC"),
            CardScore("ece", "ECE"),
        ),
        context=_card_context,
    ),
)
