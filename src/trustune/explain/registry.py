"""Attribution methods by name: ``@register_explainer`` adds one, :func:`get_explainer` finds it.

The registry itself imports neither torch nor Captum: the built-in methods are registered by
the path of their function (:func:`register_explainer_path`) and their modules imported on
first use, so listing the methods (``trustune explain --help``) stays instant.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from trustune.config import Precision
from trustune.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import numpy as np

    from trustune.explain.batch import TokenBatch
    from trustune.explain.model import ExplainableModel

__all__ = [
    "DEFAULT_METHOD",
    "AttributionFn",
    "ExplainOptions",
    "Explainer",
    "MethodResult",
    "get_explainer",
    "known_methods",
    "methods_for",
    "register_explainer",
    "register_explainer_path",
]

DEFAULT_METHOD = "integrated-gradients"


@dataclass(frozen=True)
class ExplainOptions:
    """Knobs of the attribution methods; each method reads the ones it uses."""

    n_steps: int = 50  # integrated gradients: integration steps
    internal_batch_size: int | None = None  # integrated gradients: rows per forward pass
    n_samples: int = 200  # kernel-shap: coalitions sampled per text
    texts_per_batch: int = 4  # texts explained in one call where the method allows (BENCHMARKS.md)
    seed: int = 0  # kernel-shap sampling
    # auto: bf16 autocast where the hardware multiplies bf16 natively (AMX / AVX512-BF16 CPU,
    # recent GPU), else fp32; the completeness error of each explanation shows the cost
    precision: Precision | str = Precision.AUTO

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", Precision.parse(self.precision, "precision"))
        for name in ("n_steps", "n_samples", "texts_per_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: {getattr(self, name)} is not allowed, it must be > 0")
        if self.internal_batch_size is not None and self.internal_batch_size < 1:
            raise ConfigError(
                f"internal_batch_size: {self.internal_batch_size} is not allowed, it must be > 0"
            )


@dataclass(frozen=True)
class MethodResult:
    """Word scores of each text of a batch, and the completeness error where the method has one."""

    scores: list[np.ndarray]
    deltas: list[float] | None = None


AttributionFn = Callable[["ExplainableModel", "TokenBatch", ExplainOptions], MethodResult]


@dataclass(frozen=True)
class Explainer:
    """A registered attribution method."""

    name: str
    # the function, or where it is ("package.module:function"), imported on first use
    source: AttributionFn | str = field(repr=False)
    summary: str
    needs_gradients: bool
    signed: bool = True
    batched: bool = True  # False: one text per call

    @property
    def attribute(self) -> AttributionFn:
        """The attribution function (its module imported now if it was registered by path)."""
        if not isinstance(self.source, str):
            return self.source
        module, _, name = self.source.partition(":")
        return cast("AttributionFn", getattr(importlib.import_module(module), name))

    def check_model(self, model: ExplainableModel) -> None:
        """Refuse a model this method cannot explain, naming the methods that can."""
        if not self.needs_gradients:
            return
        reason = model.gradient_support
        if reason is not None:
            able = ", ".join(methods_for(model))
            raise ModelError(
                f"method {self.name!r} needs gradients through the model, and this model "
                f"cannot give them: {reason}. Methods that need only predictions: {able}"
            )


_EXPLAINERS: dict[str, Explainer] = {}


def register_explainer(
    name: str, *, summary: str, needs_gradients: bool, signed: bool = True, batched: bool = True
) -> Callable[[AttributionFn], AttributionFn]:
    """Register an attribution function under ``name``; a duplicate name is an error."""

    def decorator(fn: AttributionFn) -> AttributionFn:
        _add(
            Explainer(
                name=name, source=fn, summary=summary, needs_gradients=needs_gradients,
                signed=signed, batched=batched,
            )
        )  # fmt: skip
        return fn

    return decorator


def register_explainer_path(
    name: str, path: str, *, summary: str, needs_gradients: bool, signed: bool = True,
    batched: bool = True,
) -> None:  # fmt: skip
    """Register the attribution function at ``path`` ("package.module:function") under
    ``name`` without importing it: its module is imported when the method is first used."""
    if ":" not in path:
        raise ValueError(f"{path!r} is not a function path; write package.module:function")
    _add(
        Explainer(
            name=name, source=path, summary=summary, needs_gradients=needs_gradients,
            signed=signed, batched=batched,
        )
    )  # fmt: skip


def _add(explainer: Explainer) -> None:
    if explainer.name in _EXPLAINERS:
        raise ConfigError(
            f"an explanation method named {explainer.name!r} is already registered; "
            f"the methods are {known_methods()}"
        )
    _EXPLAINERS[explainer.name] = explainer


def known_methods() -> list[str]:
    """Names of the registered methods, in registration order."""
    return list(_EXPLAINERS)


def get_explainer(name: str) -> Explainer:
    """The method registered as ``name``; an unknown name is an error listing the known ones."""
    try:
        return _EXPLAINERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown explanation method {name!r}; the methods are {', '.join(known_methods())}"
        ) from None


def methods_for(model: ExplainableModel) -> list[str]:
    """The registered methods that can explain this model."""
    gradients = model.gradient_support is None
    return [name for name, e in _EXPLAINERS.items() if gradients or not e.needs_gradients]
