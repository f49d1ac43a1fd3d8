"""Latency and throughput of a predict function, measured on this machine."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["measure_speed"]


def measure_speed(
    predict: Callable[[Sequence[str], int], Any],
    texts: Sequence[str],
    *,
    latency_samples: int = 30,
    batch_size: int = 32,
    throughput_batches: int = 4,
    device: str = "cpu",
) -> dict[str, Any]:
    """p50/p95 latency at batch 1 and throughput at ``batch_size``, after a warm-up."""
    pool = list(texts) or ["example"]
    predict(pool[:1], 1)  # warm-up
    timings = []
    for i in range(latency_samples):
        text = pool[i % len(pool)]
        start = time.perf_counter()
        predict([text], 1)
        timings.append((time.perf_counter() - start) * 1000.0)
    batch = [pool[i % len(pool)] for i in range(batch_size * throughput_batches)]
    predict(batch[:batch_size], batch_size)  # warm-up at this shape
    start = time.perf_counter()
    predict(batch, batch_size)
    elapsed = time.perf_counter() - start
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "latency_ms_p50": round(float(np.percentile(timings, 50)), 3),
        "latency_ms_p95": round(float(np.percentile(timings, 95)), 3),
        "batch_size": batch_size,
        "throughput_per_s": round(len(batch) / elapsed, 1),
    }
