"""The built-in attribution methods; importing this package registers them."""

from __future__ import annotations

from trustune.explain.methods import gradient, perturbation

__all__ = ["gradient", "perturbation"]
