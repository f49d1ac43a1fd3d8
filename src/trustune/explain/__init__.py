"""Why a model decided: word attributions, global importance, faithfulness, and their rendering.

Attribution methods (Captum) are registered by name in :mod:`trustune.explain.registry`;
importing this package registers the built-in ones. The registry and the settings import
neither torch nor Captum (``trustune explain --help`` lists the methods); the other names are
imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trustune.explain import methods as _methods  # noqa: F401  (registers the built-in methods)
from trustune.explain.registry import (
    DEFAULT_METHOD,
    Explainer,
    ExplainOptions,
    MethodResult,
    get_explainer,
    known_methods,
    methods_for,
    register_explainer,
    register_explainer_path,
)
from trustune.explain.settings import ExplainFormat, ExplainSettings

if TYPE_CHECKING:  # type checkers see the names; at run time they are imported on first use
    from trustune.explain.explainer import explain_texts, iter_explanations
    from trustune.explain.explanation import Explanation
    from trustune.explain.model import ExplainableModel

__all__ = [
    "DEFAULT_METHOD",
    "ExplainFormat",
    "ExplainOptions",
    "ExplainSettings",
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
    "register_explainer_path",
]

_LAZY = {
    "explain_texts": "trustune.explain.explainer",
    "iter_explanations": "trustune.explain.explainer",
    "Explanation": "trustune.explain.explanation",
    "ExplainableModel": "trustune.explain.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trustune.explain' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
