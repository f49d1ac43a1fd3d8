"""Classification metrics from true labels and class probabilities (scikit-learn underneath)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from trustune.evaluate.calibration import reliability

__all__ = ["classification_metrics", "quick_metrics"]

_CURVE_POINTS = 200


def _thin(*arrays: np.ndarray) -> list[list[float]]:
    """At most ``_CURVE_POINTS`` points per curve, end points kept, rounded for JSON."""
    n = len(arrays[0])
    keep: Any = (
        np.unique(np.linspace(0, n - 1, min(n, _CURVE_POINTS)).round().astype(int)) if n else []
    )
    return [[round(float(a[i]), 5) for i in keep] for a in arrays]


def quick_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The figures training tracks each evaluation: loss, accuracy, macro F1."""
    predicted = probs.argmax(axis=1)
    picked = probs[np.arange(len(y_true)), y_true]
    return {
        "loss": float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()),
        "accuracy": float((predicted == y_true).mean()),
        "f1_macro": float(
            skm.f1_score(
                y_true,
                predicted,
                average="macro",
                labels=np.arange(probs.shape[1]),
                zero_division=0,
            )
        ),
    }


def _curves_and_auc(y_true: np.ndarray, probs: np.ndarray, names: list[str]) -> dict[str, Any]:
    n_classes = probs.shape[1]
    positives = [1] if n_classes == 2 else list(range(n_classes))
    roc: dict[str, Any] = {}
    pr: dict[str, Any] = {}
    roc_aucs, pr_aucs = [], []
    for c in positives:
        target = (y_true == c).astype(int)
        if target.min() == target.max():
            continue  # a class absent (or alone) in this data has no curve
        fpr, tpr, _ = skm.roc_curve(target, probs[:, c])
        precision, recall, _ = skm.precision_recall_curve(target, probs[:, c])
        roc[names[c]] = dict(zip(("fpr", "tpr"), _thin(fpr, tpr), strict=True))
        pr[names[c]] = dict(zip(("precision", "recall"), _thin(precision, recall), strict=True))
        roc_aucs.append(skm.roc_auc_score(target, probs[:, c]))
        pr_aucs.append(skm.average_precision_score(target, probs[:, c]))
    return {
        "roc_auc": float(np.mean(roc_aucs)) if roc_aucs else None,
        "pr_auc": float(np.mean(pr_aucs)) if pr_aucs else None,
        "curves": {"roc": roc, "pr": pr},
    }


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, *, label_names: Sequence[Any]
) -> dict[str, Any]:
    """Accuracy, P/R/F1 (macro, weighted, per class), confusion matrix, ROC/PR, calibration."""
    y = np.asarray(y_true, dtype=np.int64)
    names = [str(n) for n in label_names]
    labels = np.arange(len(names))
    predicted = probs.argmax(axis=1)
    result: dict[str, Any] = {"accuracy": float(skm.accuracy_score(y, predicted))}
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, predicted, labels=labels, average=average, zero_division=0
        )
        result.update(
            {
                f"precision_{average}": float(p),
                f"recall_{average}": float(r),
                f"f1_{average}": float(f),
            }
        )
    p, r, f, s = skm.precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    result["per_class"] = {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(names)
    }
    matrix = skm.confusion_matrix(y, predicted, labels=labels)
    result["confusion_matrix"] = {"labels": names, "matrix": matrix.tolist()}
    result.update(_curves_and_auc(y, probs, names))
    ece, bins = reliability(y, probs)
    result["ece"] = ece
    result["reliability"] = {"bins": bins}
    result["loss"] = quick_metrics(y, probs)["loss"]
    return result
