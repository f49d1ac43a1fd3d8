"""The built-in attribution methods; importing this package registers them.

They are registered by path, so registering them imports neither torch nor Captum: each
module (:mod:`.gradient`, :mod:`.perturbation`) is imported when its method is first used.
"""

from __future__ import annotations

from trustune.explain.registry import register_explainer_path

__all__: list[str] = []

_GRADIENT = "trustune.explain.methods.gradient"
_PERTURBATION = "trustune.explain.methods.perturbation"

register_explainer_path(
    "integrated-gradients", f"{_GRADIENT}:integrated_gradients",
    summary="layer integrated gradients on the token embeddings from a [PAD] baseline; "
    "scores add up to p(text) - p(baseline) (the reported delta is the error)",
    needs_gradients=True,
)  # fmt: skip
register_explainer_path(
    "gradient-x-input", f"{_GRADIENT}:gradient_x_input",
    summary="gradient times the token embedding (one backward pass; fast, first-order)",
    needs_gradients=True,
)  # fmt: skip
register_explainer_path(
    "saliency", f"{_GRADIENT}:saliency",
    summary="size of the gradient at each token embedding (one backward pass; unsigned)",
    needs_gradients=True, signed=False,
)  # fmt: skip
register_explainer_path(
    "occlusion", f"{_PERTURBATION}:occlusion",
    summary="drop in the target probability when one word is replaced by [PAD] "
    "(one forward pass per word; needs only predictions)",
    needs_gradients=False,
)  # fmt: skip
register_explainer_path(
    "kernel-shap", f"{_PERTURBATION}:kernel_shap",
    summary="Shapley values of the words estimated from random word subsets "
    "(needs only predictions; slower, n_samples forward passes per text)",
    needs_gradients=False, batched=False,
)  # fmt: skip
