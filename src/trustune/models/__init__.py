"""Resolving and safely loading models: the only place that calls ``from_pretrained``."""

from __future__ import annotations

from trustune.models.resolve import BUILTIN_MODELS, ResolvedModel, resolve_model
from trustune.models.safe_load import (
    PICKLE_SUFFIXES,
    check_checkpoint_folder,
    load_classifier,
    load_tokenizer,
)

__all__ = [
    "BUILTIN_MODELS",
    "PICKLE_SUFFIXES",
    "ResolvedModel",
    "check_checkpoint_folder",
    "load_classifier",
    "load_tokenizer",
    "resolve_model",
]
