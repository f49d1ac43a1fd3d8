"""Causal language models (chat and generation) and their tokenizers, under the same policy as
classifiers: safetensors only (headers checked first), never pickle, never remote code.

Any built-in transformers causal-LM architecture loads (Llama, Qwen2, GPT-2, Mistral, ...), from
a local folder, a hub id, or the packaged default ``chat`` (see :mod:`.packaged_gguf`).
Tokenizers without a pad token get their end-of-sequence token as pad token: batches are padded
with it and the padded positions are masked (attention mask, labels -100), so it is never
learned as a pad.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from trustune.errors import ModelError, UnsafeModelError
from trustune.models.memory import (  # the in-memory policy checks, shared with classifiers
    ModelFiles,
    model_from_files,
    read_small,
    read_small_json,
)
from trustune.models.memory import load_tokenizer_from_files as _tokenizer_from_files
from trustune.models.resolve import ResolvedModel
from trustune.models.safe_load import load_tokenizer, pretrained_kwargs
from trustune.models.weights import check_loading_info

__all__ = [
    "context_length",
    "load_causal_lm",
    "load_causal_lm_from_files",
    "load_chat_tokenizer",
    "load_chat_tokenizer_from_files",
    "lora_target_modules",
    "with_pad_token",
]

# config.json keys that hold a model's context length, by architecture family
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_MAX_TEMPLATE_BYTES = 1 << 20  # the longest real chat templates are a few tens of kB


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load_causal_lm(
    model: ResolvedModel, *, dtype: Any = None, attn_implementation: str | None = None
) -> Any:
    """An ``AutoModelForCausalLM`` with every tensor found in its weights (tied ones aside).

    ``dtype``: a ``torch.dtype`` to load in (default: as saved). Quantised checkpoints
    (``quantization_config``) are refused: they would load through a quantiser's own code.
    """
    import transformers
    from transformers import AutoModelForCausalLM

    kwargs = pretrained_kwargs(model)
    if model.is_local:
        _refuse_quantized(Path(model.location))
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        result: Any = AutoModelForCausalLM.from_pretrained(
            model.location, output_loading_info=True, **kwargs
        )
        loaded, info = result
    except UnsafeModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelError(
            f"cannot load {model.source!r} as a causal language model: {_first_line(e)}"
        ) from None
    finally:
        transformers.logging.set_verbosity(previous)
    check_loading_info(loaded, info, new_head=False, source=repr(model.source))
    return loaded


def _refuse_quantized(folder: Path) -> None:
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return  # check_checkpoint_folder already named the fault
    if isinstance(config, dict) and config.get("quantization_config"):
        method = config["quantization_config"]
        method = method.get("quant_method") if isinstance(method, dict) else method
        raise ModelError(
            f"{folder} holds a quantised checkpoint ({method}); trustune loads plain "
            "safetensors weights. Save a dequantised copy with save_pretrained"
        )


def load_causal_lm_from_files(files: ModelFiles, *, dtype: Any = None) -> Any:
    """The causal LM of a model folder held in memory (an encrypted run; nothing is written)."""
    if read_small_json(files, "config.json").get("quantization_config"):
        raise ModelError(
            f"{files.source} holds a quantised checkpoint; trustune loads plain weights"
        )
    return model_from_files(
        files, mapping="MODEL_FOR_CAUSAL_LM_MAPPING",
        what="transformers causal language model", dtype=dtype,
    )  # fmt: skip


def with_pad_token(tokenizer: Any, *, source: str) -> Any:
    """The tokenizer with a pad token: its own, else its end-of-sequence token (documented in
    the module docstring); one with neither is refused."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(
                f"the tokenizer of {source} has neither a pad nor an end-of-sequence token; "
                "a causal language model needs one to end texts and pad batches"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_chat_tokenizer(
    model: ResolvedModel, *, padding_side: Literal["left", "right"] | None = None
) -> Any:
    """The model's fast tokenizer (size-checked, no remote code) with a pad token (see
    :func:`with_pad_token`). ``padding_side``: ``"left"`` for batched generation, ``"right"``
    for training; default as saved."""
    tokenizer = with_pad_token(load_tokenizer(model), source=repr(model.source))
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return tokenizer


def load_chat_tokenizer_from_files(
    files: ModelFiles, *, padding_side: Literal["left", "right"] | None = None
) -> Any:
    """:func:`load_chat_tokenizer` for a model folder held in memory, its chat template too."""
    tokenizer = with_pad_token(_tokenizer_from_files(files), source=files.source)
    names = set(files.names())
    if "chat_template.jinja" in names:
        raw = read_small(files, "chat_template.jinja")
        if raw.nbytes > _MAX_TEMPLATE_BYTES:
            raise ModelError(
                f"{files.source}/chat_template.jinja is {raw.nbytes} bytes, more than a chat "
                "template has; it is damaged or not this model's"
            )
        try:
            tokenizer.chat_template = raw.tobytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelError(
                f"{files.source}/chat_template.jinja is not UTF-8: {e.reason}"
            ) from None
    elif "tokenizer_config.json" in names:
        template = read_small_json(files, "tokenizer_config.json").get("chat_template")
        if isinstance(template, str):
            tokenizer.chat_template = template
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return tokenizer


def context_length(config: Any) -> int | None:
    """The longest sequence the model takes (``max_position_embeddings`` or its family's name
    for it), from a loaded model's config; None where the config does not say."""
    for key in _CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


# The linear layers LoRA adapts, per architecture family (their names in transformers' code):
# attention and MLP projections, as QLoRA does; other architectures: every Linear but the head.
_LORA_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}


def lora_target_modules(model: Any) -> list[str]:
    """The module names LoRA adapters go on for ``model``'s architecture."""
    import torch

    kind = str(getattr(model.config, "model_type", ""))
    if kind in _LORA_TARGETS:
        return list(_LORA_TARGETS[kind])
    head = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    if not names:
        raise ModelError(f"found no linear layers for LoRA adapters in a {kind or '?'} model")
    return sorted(names)
