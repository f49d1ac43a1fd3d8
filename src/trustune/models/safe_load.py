"""The one place models are loaded: safetensors only, never remote code, never pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trustune.errors import ModelError, UnsafeModelError
from trustune.models.resolve import ResolvedModel
from trustune.models.safetensors_header import read_header
from trustune.models.tokenizer_files import check_file_size, check_tokenizer_folder, tokenizer_error
from trustune.models.weights import check_loading_info

__all__ = ["PICKLE_SUFFIXES", "check_checkpoint_folder", "load_classifier", "load_tokenizer"]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _read_config(path: Path) -> dict[str, Any]:
    try:
        check_file_size(path.name, path.stat().st_size, source=str(path.parent))
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path} cannot be read as JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise ModelError(f"{path} is not UTF-8 text: {e.reason}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a JSON object")
    return config


def _refuse_remote_tokenizer(folder: Path) -> None:
    path = folder / "tokenizer_config.json"
    if path.is_file() and "auto_map" in _read_config(path):
        raise UnsafeModelError(
            f"{folder} asks for remote code (auto_map in tokenizer_config.json); trustune never "
            "runs code that ships with a model"
        )


def check_checkpoint_folder(folder: Path) -> None:
    """Refuse folders whose loading could run foreign code or that hold no safetensors weights."""
    if "auto_map" in _read_config(folder / "config.json"):
        raise UnsafeModelError(
            f"{folder} asks for remote code (auto_map in config.json); trustune never runs "
            "code that ships with a model. Use a checkpoint of a built-in transformers architecture"
        )
    _refuse_remote_tokenizer(folder)
    if not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise UnsafeModelError(
                f"{folder} holds pickle weights only ({', '.join(pickled)}); trustune loads "
                "safetensors only. Convert once in a trusted environment: "
                "model.save_pretrained(folder, safe_serialization=True)"
            )
        raise ModelError(f"{folder} has no *.safetensors weights")
    for weights in sorted(folder.glob("*.safetensors")):
        read_header(weights)  # malformed or renamed pickle: a clear error before any parser runs


def pretrained_kwargs(model: ResolvedModel) -> dict[str, Any]:
    if model.is_local:
        check_checkpoint_folder(Path(model.location))
    return {"trust_remote_code": False, "use_safetensors": True}


def load_classifier(
    model: ResolvedModel,
    *,
    head: dict[str, Any] | None = None,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    attn_implementation: str | None = None,
) -> Any:
    """An ``AutoModelForSequenceClassification``; a new head when ``head``, ``num_labels`` or
    ``id2label`` is given (``head``: a task's ``id2label`` or ``num_labels`` and
    ``problem_type``).

    Without them it is a trained model: every tensor must be in the weights. With them (a base
    checkpoint for fine-tuning) only the head may be missing.
    """
    import transformers
    from transformers import AutoModelForSequenceClassification

    head = dict(head or {})
    id2label = head.pop("id2label", id2label)
    num_labels = head.pop("num_labels", num_labels)
    kwargs = pretrained_kwargs(model)
    kwargs.update(head)  # problem_type
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if id2label is not None:
        kwargs["num_labels"] = len(id2label)
        kwargs["id2label"] = id2label
        kwargs["label2id"] = {v: k for k, v in id2label.items()}
        # A checkpoint that already has a classifier head gets a new one of the right size.
        kwargs["ignore_mismatched_sizes"] = True
    elif num_labels is not None:
        kwargs["num_labels"] = num_labels
        kwargs["ignore_mismatched_sizes"] = True
    new_head = id2label is not None or num_labels is not None
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the "newly initialized head" notice is expected
    try:
        loaded, info = AutoModelForSequenceClassification.from_pretrained(
            model.location, output_loading_info=True, **kwargs
        )
    except UnsafeModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load model {model.source!r}: {first}") from None
    finally:
        transformers.logging.set_verbosity(previous)
    check_loading_info(loaded, info, new_head=new_head, source=repr(model.source))
    return loaded


def load_tokenizer(model: ResolvedModel) -> Any:
    """The fast tokenizer that belongs to the checkpoint (its files size-checked first)."""
    from transformers import AutoTokenizer

    names: set[str] = set()
    if model.is_local:
        folder = Path(model.location)
        check_tokenizer_folder(folder)
        _refuse_remote_tokenizer(folder)
        names = {p.name for p in folder.iterdir()}
    try:
        return AutoTokenizer.from_pretrained(model.location, trust_remote_code=False, use_fast=True)
    except (OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load the tokenizer of {model.source!r}: {first}") from None
    except Exception as e:  # the tokenizers library raises a bare Exception on a malformed file
        raise tokenizer_error(model.source, names or {"tokenizer.json"}, e) from None
