"""Gradient methods on the input embeddings (Captum): integrated gradients, gradient x input, saliency."""

from __future__ import annotations

import numpy as np
import torch
from captum.attr import LayerGradientXActivation, LayerIntegratedGradients

from trustune.explain.batch import TokenBatch
from trustune.explain.model import ExplainableModel
from trustune.explain.registry import ExplainOptions, MethodResult
from trustune.explain.words import merge_pieces

__all__ = ["gradient_x_input", "integrated_gradients", "saliency"]

# Tokens (rows x sequence length) per forward pass of the integration steps; measured on
# 2 CPU cores with MiniLM: larger passes are no faster and cost memory.
_TOKENS_PER_PASS = 8192


def _to_words(token_scores: torch.Tensor, batch: TokenBatch) -> list[np.ndarray]:
    """Per-text word scores from (batch, seq) token scores."""
    values = token_scores.detach().double().numpy()
    return [
        merge_pieces(values[row], text.word_of_token, text.n_words)
        for row, text in enumerate(batch.texts)
    ]


def rows_per_pass(batch: TokenBatch, options: ExplainOptions) -> int:
    """Rows of one forward pass: the integration steps of all texts, capped by a token budget."""
    if options.internal_batch_size is not None:
        return max(options.internal_batch_size, len(batch))
    seq = batch.input_ids.shape[1]
    return max(len(batch), min(len(batch) * options.n_steps, _TOKENS_PER_PASS // seq))


def integrated_gradients(
    model: ExplainableModel, batch: TokenBatch, options: ExplainOptions
) -> MethodResult:
    method = LayerIntegratedGradients(model.probabilities, model.embeddings)
    with torch.inference_mode(False), torch.enable_grad():
        attributions, delta = method.attribute(
            inputs=batch.input_ids,
            baselines=batch.baseline_ids,
            target=batch.targets,
            additional_forward_args=(batch.attention_mask, batch.types),
            n_steps=options.n_steps,
            internal_batch_size=rows_per_pass(batch, options),
            return_convergence_delta=True,
        )
    token_scores = attributions.sum(dim=-1)  # (batch, seq): summed over the hidden size
    return MethodResult(_to_words(token_scores, batch), [float(d) for d in delta])


def gradient_x_input(
    model: ExplainableModel, batch: TokenBatch, options: ExplainOptions
) -> MethodResult:
    method = LayerGradientXActivation(model.probabilities, model.embeddings)
    with torch.inference_mode(False), torch.enable_grad():
        attributions = method.attribute(
            batch.input_ids,
            target=batch.targets,
            additional_forward_args=(batch.attention_mask, batch.types),
        )
    assert isinstance(attributions, torch.Tensor)
    return MethodResult(_to_words(attributions.sum(dim=-1), batch))


def saliency(model: ExplainableModel, batch: TokenBatch, options: ExplainOptions) -> MethodResult:
    method = LayerGradientXActivation(
        model.probabilities, model.embeddings, multiply_by_inputs=False
    )
    with torch.inference_mode(False), torch.enable_grad():
        gradients = method.attribute(
            batch.input_ids,
            target=batch.targets,
            additional_forward_args=(batch.attention_mask, batch.types),
        )
    assert isinstance(gradients, torch.Tensor)
    return MethodResult(_to_words(gradients.norm(dim=-1), batch))
