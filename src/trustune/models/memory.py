"""Building a classifier and its tokenizer from file contents in memory (an encrypted run).

The same policy as loading from a folder: safetensors only (header checked first), a built-in
transformers architecture only (``auto_map`` refused, ``trust_remote_code`` never set), and
nothing is written to disk: the weights become tensors that share the decrypted buffer.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from trustune.errors import ModelError, UnsafeModelError
from trustune.models.safe_load import PICKLE_SUFFIXES
from trustune.models.safetensors_header import MAX_HEADER_BYTES, parse_header
from trustune.models.tokenizer_files import check_file_size, tokenizer_error
from trustune.models.weights import check_loading_info

__all__ = [
    "ModelFiles",
    "load_classifier_from_files",
    "load_tokenizer_from_files",
    "model_from_files",
    "read_small",
    "read_small_json",
    "state_dict_from_buffer",
]

_TORCH_DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
    "I32": torch.int32, "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16,
    "F32": torch.float32, "F64": torch.float64,
}  # fmt: skip
# tokenizer_config.json keys passed on to the tokenizer: special tokens and plain settings.
_TOKENIZER_KEYS = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
    "model_max_length", "padding_side", "truncation_side", "clean_up_tokenization_spaces",
)  # fmt: skip


class ModelFiles(Protocol):
    """The files of one model folder, by name relative to it (``config.json``, ...).

    A reader that knows a file's size before reading it may offer ``size(name) -> int``: the
    size limits of the small files are then checked before anything is decrypted or read.
    """

    source: str  # names the folder in messages

    def names(self) -> Sequence[str]: ...

    def read(self, name: str) -> bytes | bytearray | np.ndarray: ...


def _as_array(data: bytes | bytearray | np.ndarray) -> np.ndarray:
    array = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    return array if array.flags.writeable else array.copy()


def read_small(files: ModelFiles, name: str) -> np.ndarray:
    """A size-limited file (tokenizer, config): its size is checked before and after reading."""
    size = getattr(files, "size", None)
    if callable(size):
        check_file_size(name, int(size(name)), source=files.source)
    data = _as_array(files.read(name))
    check_file_size(name, data.nbytes, source=files.source)
    return data


def read_small_json(files: ModelFiles, name: str) -> dict[str, Any]:
    try:
        data = json.loads(read_small(files, name).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{files.source}/{name} cannot be read as JSON: {e}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{files.source}/{name} is not a JSON object")
    return data


def _check_policy(files: ModelFiles) -> tuple[dict[str, Any], list[str]]:
    names = list(files.names())
    if "config.json" not in names:
        raise ModelError(f"{files.source} has no config.json; it is not a model folder")
    config = read_small_json(files, "config.json")
    if "auto_map" in config:
        raise UnsafeModelError(
            f"{files.source} asks for remote code (auto_map in config.json); trustune never runs "
            "code that ships with a model. Use a checkpoint of a built-in transformers architecture"
        )
    weights = sorted(n for n in names if "/" not in n and n.endswith(".safetensors"))
    if not weights:
        pickled = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
        if pickled:
            raise UnsafeModelError(
                f"{files.source} holds pickle weights only ({', '.join(pickled)}); trustune loads "
                "safetensors only. Convert once in a trusted environment: "
                "model.save_pretrained(folder, safe_serialization=True)"
            )
        raise ModelError(f"{files.source} has no *.safetensors weights")
    return config, weights


def state_dict_from_buffer(
    data: bytes | bytearray | np.ndarray, *, name: str
) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file held in memory, checked first; they share ``data``."""
    buffer = _as_array(data)
    header = parse_header(buffer.data[: 8 + MAX_HEADER_BYTES], len(buffer), name=name)
    if sys.byteorder != "little" or any(t.dtype not in _TORCH_DTYPES for t in header.tensors):
        from safetensors.torch import load

        try:
            return load(buffer.tobytes())
        except Exception as e:  # safetensors raises its own SafetensorError
            raise ModelError(f"{name} cannot be loaded: {e}") from None
    base = torch.from_numpy(buffer)
    tensors: dict[str, torch.Tensor] = {}
    for entry in header.tensors:
        dtype = _TORCH_DTYPES[entry.dtype]
        start = header.data_start + entry.begin
        raw = base[start : header.data_start + entry.end]
        if raw.numel() == 0:
            tensors[entry.name] = torch.empty(entry.shape, dtype=dtype)
            continue
        if start % dtype.itemsize:  # a view must be aligned to its element size
            raw = raw.clone()
        tensors[entry.name] = raw.view(dtype).reshape(entry.shape)
    return tensors


def load_classifier_from_files(files: ModelFiles) -> Any:
    """The sequence classifier of a model folder held in memory (built-in architectures only)."""
    return model_from_files(
        files, mapping="MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING",
        what="transformers sequence classifier",
    )  # fmt: skip


def model_from_files(
    files: ModelFiles, *, mapping: str, what: str, dtype: torch.dtype | None = None
) -> Any:
    """The model of a folder held in memory, of the class transformers' ``mapping`` (an
    ``MODEL_FOR_..._MAPPING`` name) gives for its config; ``what`` names that kind of model in
    errors. Built-in architectures only, after the folder's policy checks; ``dtype``: the
    floating-point weights cast to it."""
    import transformers

    config_dict, weights = _check_policy(files)
    try:
        config = transformers.AutoConfig.for_model(**config_dict)
        model_class: Any = getattr(transformers, mapping)[type(config)]
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(
            f"{files.source}: model type {config_dict.get('model_type')!r} is not a built-in "
            f"{what} ({e.__class__.__name__})"
        ) from None
    state_dict: dict[str, torch.Tensor] = {}
    for weight_file in weights:
        state_dict.update(
            state_dict_from_buffer(files.read(weight_file), name=f"{files.source}/{weight_file}")
        )
    if dtype is not None:
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model, info = model_class.from_pretrained(
            None, config=config, state_dict=state_dict, trust_remote_code=False,
            output_loading_info=True, **({"dtype": dtype} if dtype is not None else {}),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load the model in {files.source}: {first}") from None
    finally:
        transformers.logging.set_verbosity(previous)
    check_loading_info(model, info, new_head=False, source=files.source)
    return model


@functools.cache
def _tokenizer_class() -> type:
    from transformers import PreTrainedTokenizerFast

    class InMemoryTokenizer(PreTrainedTokenizerFast):  # type: ignore[misc]
        """A fast tokenizer around a ``tokenizers.Tokenizer`` built in memory.

        The backend is set before ``__init__`` as transformers' own model tokenizers do, because
        ``tokenizer_object=`` would deep-copy it (as long again as parsing tokenizer.json).
        """

        def __init__(self, *, backend: Any, **kwargs: Any) -> None:
            self._tokenizer = backend
            super().__init__(**kwargs)

    return InMemoryTokenizer


def load_tokenizer_from_files(files: ModelFiles) -> Any:
    """The fast tokenizer of a model folder held in memory (``tokenizer.json``)."""
    from tokenizers import Tokenizer

    names = set(files.names())
    if "tokenizer.json" not in names:
        raise ModelError(
            f"{files.source} has no tokenizer.json; encrypted runs need a fast tokenizer "
            "(save the tokenizer with transformers' save_pretrained)"
        )
    settings = (
        read_small_json(files, "tokenizer_config.json") if "tokenizer_config.json" in names else {}
    )
    if "auto_map" in settings:
        raise UnsafeModelError(
            f"{files.source} asks for remote code (auto_map in tokenizer_config.json); trustune "
            "never runs code that ships with a model"
        )
    if "special_tokens_map.json" in names:
        special = read_small_json(files, "special_tokens_map.json")
        settings = {**{k: v for k, v in special.items() if isinstance(v, str)}, **settings}
    kwargs = {k: settings[k] for k in _TOKENIZER_KEYS if isinstance(settings.get(k), str | int)}
    raw = read_small(files, "tokenizer.json")
    try:
        text = raw.tobytes().decode("utf-8")
        del raw
        return _tokenizer_class()(backend=Tokenizer.from_str(text), **kwargs)
    except Exception as e:  # the tokenizers library raises a bare Exception on bad JSON
        raise tokenizer_error(files.source, {"tokenizer.json"}, e) from None
