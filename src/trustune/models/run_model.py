"""Opening a finished run's model in the format its manifest names.

A trained run stores a transformers sequence classifier as safetensors. A run written by
``trustune compress`` may store an ONNX graph instead (``format: onnx``: ``model/model.onnx``
beside ``config.json`` and the tokenizer, the layout ONNX Runtime tools read), or safetensors
weights that are transformed when loaded (``load_transform: dynamic-int8``: PyTorch dynamic
quantization of the Linear layers, which has no serialised form that plain transformers reads).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from trustune.errors import ArtifactError, ModelError
from trustune.models.memory import ModelFiles, load_classifier_from_files
from trustune.models.onnx_model import ONNX_FILE, load_onnx_model
from trustune.models.resolve import ResolvedModel
from trustune.models.safe_load import _refuse_remote_tokenizer, load_classifier

__all__ = [
    "LOAD_TRANSFORMS",
    "MODEL_FORMATS",
    "apply_load_transform",
    "dynamic_int8",
    "load_run_model",
    "load_run_model_from_files",
]

MODEL_FORMATS = ("transformers", "onnx")
LOAD_TRANSFORMS = ("dynamic-int8",)


def dynamic_int8(model: Any) -> Any:
    """PyTorch dynamic int8 quantization of every ``nn.Linear`` (weights int8 per tensor,
    activations quantized per batch), through ``torch.ao.quantization.quantize_dynamic``.

    torch 2.13 still ships it, marked deprecated in favour of torchao; trustune uses it because
    it needs no extra package and runs on the fbgemm/x86 kernels of the CPU wheel.
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notices name torchao; see the docstring
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), {torch.nn.Linear}, dtype=torch.qint8)


def apply_load_transform(model: Any, transform: str | None) -> Any:
    if transform is None:
        return model
    if transform == "dynamic-int8":
        return dynamic_int8(model)
    raise ArtifactError(
        f"unknown load_transform {transform!r} in the manifest's compression section; known: "
        f"{', '.join(LOAD_TRANSFORMS)} (upgrade trustune, or compress the parent run again)"
    )


def _check_format(fmt: str) -> None:
    if fmt not in MODEL_FORMATS:
        raise ArtifactError(
            f"unknown model format {fmt!r} in the manifest's compression section; known: "
            f"{', '.join(MODEL_FORMATS)} (upgrade trustune)"
        )


def load_run_model(folder: Path, *, fmt: str = "transformers", transform: str | None = None) -> Any:
    """The model of a plaintext ``model/`` folder."""
    _check_format(fmt)
    if fmt == "onnx":
        onnx_path = folder / ONNX_FILE
        if not onnx_path.is_file():
            raise ArtifactError(f"{folder} has no {ONNX_FILE}; the compressed run is incomplete")
        _refuse_remote_tokenizer(folder)
        try:
            config = (folder / "config.json").read_bytes()
            graph = onnx_path.read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read {folder}: {e.strerror}") from None
        return apply_load_transform(load_onnx_model(graph, config, source=str(folder)), transform)
    resolved = ResolvedModel(source=str(folder), location=str(folder.resolve()), is_local=True)
    return apply_load_transform(load_classifier(resolved), transform)


def load_run_model_from_files(
    files: ModelFiles, *, fmt: str = "transformers", transform: str | None = None
) -> Any:
    """The model of a ``model/`` folder held in memory (decrypted or hash-verified bytes)."""
    _check_format(fmt)
    if fmt == "onnx":
        names = set(files.names())
        if ONNX_FILE not in names:
            raise ArtifactError(
                f"{files.source} has no {ONNX_FILE}; the compressed run is incomplete"
            )
        graph = bytes(memoryview(files.read(ONNX_FILE)))  # type: ignore[arg-type]
        config = bytes(memoryview(files.read("config.json")))  # type: ignore[arg-type]
        return apply_load_transform(load_onnx_model(graph, config, source=files.source), transform)
    return apply_load_transform(load_classifier_from_files(files), transform)
