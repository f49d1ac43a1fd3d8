"""Calibration: expected calibration error and the reliability diagram's bins."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["reliability"]


def reliability(
    y_true: np.ndarray, probs: np.ndarray, *, bins: int = 10
) -> tuple[float, list[dict[str, Any]]]:
    """ECE (top-label, equal-width bins) and the per-bin confidence/accuracy/count."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # A confidence of exactly 1.0 belongs to the last bin.
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    table = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        conf = float(confidence[mask].mean()) if count else 0.0
        acc = float(correct[mask].mean()) if count else 0.0
        ece += count / max(len(y_true), 1) * abs(acc - conf)
        table.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "confidence": conf,
                "accuracy": acc,
                "count": count,
            }
        )
    return float(ece), table
