"""Why a model decided: word attributions, global importance, faithfulness, and their rendering.

Attribution methods (Captum) are registered by name in :mod:`trustune.explain.registry`;
importing this package registers the built-in ones.
"""

from __future__ import annotations

from trustune.explain import methods as _methods  # noqa: F401  (registers the built-in methods)
from trustune.explain.explainer import DEFAULT_METHOD, explain_texts, iter_explanations
from trustune.explain.explanation import Explanation
from trustune.explain.model import ExplainableModel
from trustune.explain.registry import (
    Explainer,
    ExplainOptions,
    MethodResult,
    get_explainer,
    known_methods,
    methods_for,
    register_explainer,
)

__all__ = [
    "DEFAULT_METHOD",
    "ExplainOptions",
    "ExplainableModel",
    "Explainer",
    "Explanation",
    "MethodResult",
    "explain_texts",
    "get_explainer",
    "iter_explanations",
    "known_methods",
    "methods_for",
    "register_explainer",
]
