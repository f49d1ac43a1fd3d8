"""Resolving and safely loading models: the only place that calls ``from_pretrained``."""

from __future__ import annotations

from trustune.models.memory import (
    ModelFiles,
    load_classifier_from_files,
    load_tokenizer_from_files,
)
from trustune.models.resolve import BUILTIN_MODELS, ResolvedModel, resolve_model
from trustune.models.run_model import load_run_model, load_run_model_from_files
from trustune.models.safe_load import (
    PICKLE_SUFFIXES,
    check_checkpoint_folder,
    load_classifier,
    load_tokenizer,
)
from trustune.models.safetensors_header import SafetensorsHeader, read_header

__all__ = [
    "BUILTIN_MODELS",
    "PICKLE_SUFFIXES",
    "ModelFiles",
    "ResolvedModel",
    "SafetensorsHeader",
    "check_checkpoint_folder",
    "load_classifier",
    "load_classifier_from_files",
    "load_run_model",
    "load_run_model_from_files",
    "load_tokenizer",
    "load_tokenizer_from_files",
    "read_header",
    "resolve_model",
]
