"""Methods that need only predictions (Captum): word occlusion and Kernel SHAP.

They never look inside the model, so quantized or exported models are explained by them too.
Removing a word means replacing its pieces by [PAD], as the integrated-gradients baseline does.
"""

from __future__ import annotations

import torch
from captum.attr import FeatureAblation, KernelShap

from trustune.explain.batch import TokenBatch
from trustune.explain.model import ExplainableModel
from trustune.explain.registry import ExplainOptions, MethodResult

__all__ = ["kernel_shap", "occlusion"]


def _first_tokens(word_mask: torch.Tensor, n_words: int) -> torch.Tensor:
    """Position of the first piece of each word 0..n_words-1 in one row of a word mask."""
    return torch.stack([torch.nonzero(word_mask == w)[0, 0] for w in range(n_words)])


def occlusion(model: ExplainableModel, batch: TokenBatch, options: ExplainOptions) -> MethodResult:
    max_words = max(t.n_words for t in batch.texts)
    with torch.inference_mode():
        attributions = FeatureAblation(model.probabilities).attribute(
            batch.input_ids,
            baselines=batch.baseline_ids,
            target=batch.targets,
            additional_forward_args=(batch.attention_mask, batch.types),
            feature_mask=batch.word_mask,
            perturbations_per_eval=max_words + 1,
        )
    scores = []
    for row, text in enumerate(batch.texts):
        first = _first_tokens(batch.word_mask[row], text.n_words)
        scores.append(attributions[row, first].double().numpy())
    return MethodResult(scores)


def kernel_shap(
    model: ExplainableModel, batch: TokenBatch, options: ExplainOptions
) -> MethodResult:
    method = KernelShap(model.probabilities)
    scores = []
    for row, text in enumerate(batch.texts):
        width = len(text.input_ids)
        with torch.random.fork_rng(), torch.inference_mode():
            torch.manual_seed(options.seed)
            attributions = method.attribute(
                batch.input_ids[row : row + 1, :width],
                baselines=batch.baseline_ids[row : row + 1, :width],
                target=batch.targets[row : row + 1],
                additional_forward_args=(
                    batch.attention_mask[row : row + 1, :width],
                    batch.types[row : row + 1, :width],
                ),
                feature_mask=batch.word_mask[row : row + 1, :width].clamp(max=text.n_words),
                n_samples=options.n_samples,
                perturbations_per_eval=min(options.n_samples, 64),
                return_input_shape=False,
            )
        scores.append(attributions[0, : text.n_words].double().numpy())  # (features,)
    return MethodResult(scores)
