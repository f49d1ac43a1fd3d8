"""Resolving and safely loading models: the only place that calls ``from_pretrained``."""

from __future__ import annotations

from trustune.models.causal import (
    context_length,
    load_causal_lm,
    load_causal_lm_from_files,
    load_chat_tokenizer,
    load_chat_tokenizer_from_files,
    lora_target_modules,
    with_pad_token,
)
from trustune.models.memory import (
    ModelFiles,
    load_classifier_from_files,
    load_tokenizer_from_files,
)
from trustune.models.packaged_gguf import (
    PACKAGED_GGUF_MODELS,
    GgufOrigin,
    PackagedGguf,
    cache_root,
    convert_gguf,
    converted_model,
    locate_packaged_gguf,
    read_origin,
)
from trustune.models.resolve import BUILTIN_MODELS, ResolvedModel, known_model_names, resolve_model
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
    "PACKAGED_GGUF_MODELS",
    "PICKLE_SUFFIXES",
    "GgufOrigin",
    "ModelFiles",
    "PackagedGguf",
    "ResolvedModel",
    "SafetensorsHeader",
    "cache_root",
    "check_checkpoint_folder",
    "context_length",
    "convert_gguf",
    "converted_model",
    "known_model_names",
    "load_causal_lm",
    "load_causal_lm_from_files",
    "load_chat_tokenizer",
    "load_chat_tokenizer_from_files",
    "load_classifier",
    "load_classifier_from_files",
    "load_run_model",
    "load_run_model_from_files",
    "load_tokenizer",
    "load_tokenizer_from_files",
    "locate_packaged_gguf",
    "lora_target_modules",
    "read_header",
    "read_origin",
    "resolve_model",
    "with_pad_token",
]
