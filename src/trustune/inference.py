"""Batched forward passes over tokenized texts (shared by training, evaluation and prediction)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trustune.encoding import Encoded, padded_batches

__all__ = ["compute_logits", "softmax"]


@torch.inference_mode()
def compute_logits(
    model: torch.nn.Module, encoded: Encoded, *, batch_size: int, pad_id: int, device: Any = "cpu"
) -> np.ndarray:
    """Logits (n, classes) in input order; batches are length-sorted for little padding."""
    model.eval()
    out: np.ndarray | None = None
    for idx, batch in padded_batches(encoded, batch_size=batch_size, pad_id=pad_id):
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(**batch).logits.float().cpu().numpy()  # (batch, classes)
        if out is None:
            out = np.empty((len(encoded.input_ids), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    if out is None:
        return np.empty((0, 0), dtype=np.float32)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result
