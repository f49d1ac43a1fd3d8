"""Evaluation: classification metrics, calibration, latency and throughput."""

from __future__ import annotations

from trustune.evaluate.calibration import reliability
from trustune.evaluate.metrics import classification_metrics, quick_metrics
from trustune.evaluate.speed import measure_speed

__all__ = ["classification_metrics", "measure_speed", "quick_metrics", "reliability"]
