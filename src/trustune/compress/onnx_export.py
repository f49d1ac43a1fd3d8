"""Exporting a sequence classifier to ONNX, fusing its graph for ONNX Runtime and quantizing it.

The export goes through PyTorch's maintained exporter (``torch.onnx.export``; ``dynamo=True``,
the torch.export-based one, falling back to the TorchScript-based one only when the former
cannot trace the model) with batch and sequence length dynamic. ONNX Runtime's transformer
optimizer then fuses attention, LayerNorm and GELU for the architectures it knows (BERT,
RoBERTa, DistilBERT, ...). Quantization is ONNX Runtime's own: ``quantize_dynamic`` (int8
weights, activations quantized per batch at run time) or ``quantize_static`` (QDQ format,
activation ranges calibrated on sample batches).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from trustune.errors import CompressionError

__all__ = [
    "FUSABLE_TYPES",
    "export_onnx",
    "fuse_onnx",
    "quantize_onnx_dynamic",
    "quantize_onnx_static",
]

# model_type in config.json -> ONNX Runtime transformer optimizer's model type
FUSABLE_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "distilbert": "bert",
    "mpnet": "bert",
    "deberta-v2": "bert",
}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters print progress and warnings of their own; keep the command's output."""
    names = ("torch.onnx", "onnxscript", "torch._dynamo", "onnxruntime", "")  # "": the root
    loggers = [logging.getLogger(n or None) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx(model: Any, path: Path, *, token_types: bool) -> str:
    """Write ``model`` (a float transformers sequence classifier) to ``path``; returns which
    exporter wrote it. Inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when
    the architecture takes them), output ``logits``; batch and sequence dynamic."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                inputs["token_type_ids"] = token_type_ids
            return self.inner(**inputs).logits

    model = model.float().eval()
    previous = getattr(model.config, "_attn_implementation", None)
    with contextlib.suppress(Exception):  # the eager graph is the one ORT's fusions recognise
        model.set_attn_implementation("eager")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    ids = torch.randint(5, 100, (2, 16), dtype=torch.long)
    args = (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if token_types else ())
    wrapper = Logits(model).eval()
    errors: list[str] = []
    try:
        for dynamo in (True, False):
            path.unlink(missing_ok=True)
            try:
                with _quiet(), torch.no_grad():
                    if dynamo:
                        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
                        torch.onnx.export(
                            wrapper, args, str(path), input_names=names,
                            output_names=["logits"], dynamo=True, external_data=False,
                            dynamic_shapes={n: {0: batch, 1: seq} for n in names},
                            optimize=True,
                        )  # fmt: skip
                    else:
                        torch.onnx.export(
                            wrapper, args, str(path), input_names=names,
                            output_names=["logits"], dynamo=False, opset_version=17,
                            dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names}
                            | {"logits": {0: "batch"}},
                        )  # fmt: skip
                if path.is_file():
                    return "torch.export (dynamo)" if dynamo else "TorchScript"
            except Exception as e:  # both exporters raise many types
                errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {_first_line(e)}")
    finally:
        if previous is not None:
            with contextlib.suppress(Exception):
                model.set_attn_implementation(previous)
    raise CompressionError(
        f"the ONNX export failed ({'; '.join(errors)}); the parent run is untouched. "
        "Use --method int8 or bf16, which stay in PyTorch"
    )


def fuse_onnx(path: Path, out: Path, config: Any) -> bool:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, GELU) for a known architecture;
    False (and ``out`` not written) when the architecture has none or nothing was fused."""
    kind = FUSABLE_TYPES.get(str(getattr(config, "model_type", "")))
    if kind is None:
        return False
    from onnxruntime.transformers import optimizer

    try:
        with _quiet():
            fused = optimizer.optimize_model(
                str(path), model_type=kind, num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size), opt_level=0,
            )  # fmt: skip
            counts = fused.get_fused_operator_statistics()
            if not any(
                counts.get(op)
                for op in ("Attention", "MultiHeadAttention", "SkipLayerNormalization")
            ):
                return False
            fused.save_model_to_file(str(out))
    except Exception:  # the optimizer is best effort: the unfused graph is still correct
        return False
    return out.is_file()


def _excluded(names: list[str] | None) -> list[str]:
    # quantize_dynamic rewrites a Gemm X as MatMul "X_MatMul" + Add before it quantizes
    return [n for name in names or [] for n in (name, f"{name}_MatMul")]


# shape inference stops at some contrib ops (Attention, SkipLayerNormalization): their outputs
# are float; MatMul inputs only: attention's activation x activation products stay float
_OPTIONS = {"MatMulConstBOnly": True, "DefaultTensorType": 1}  # 1: onnx.TensorProto.FLOAT


def _failed(error: Exception) -> CompressionError:
    return CompressionError(
        f"ONNX Runtime could not quantize the model: {_first_line(error)}; the parent run is "
        "untouched. Try --method onnx"
    )


def quantize_onnx_dynamic(
    path: Path, out: Path, *, exclude: list[str] | None = None, per_channel: bool = True,
    reduce_range: bool = False,
) -> None:  # fmt: skip
    """int8 weights (signed; per output channel unless ``per_channel`` is False), activations
    quantized per batch; ``exclude``: node names kept in float; ``reduce_range``: 7-bit weights,
    for CPUs without VNNI, whose u8s8 kernels can saturate."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            quantize_dynamic(
                str(path), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                reduce_range=reduce_range, nodes_to_exclude=_excluded(exclude),
                extra_options=dict(_OPTIONS),
            )  # fmt: skip
    except Exception as e:
        raise _failed(e) from None


def quantize_onnx_static(
    path: Path, out: Path, *, batches: list[dict[str, Any]], exclude: list[str] | None = None,
    per_channel: bool = True, reduce_range: bool = False,
) -> None:  # fmt: skip
    """QDQ int8: weights as in :func:`quantize_onnx_dynamic`, the MatMul inputs quantized with
    ranges calibrated (min/max) on ``batches`` (input name -> int64 array) and their outputs
    left in float, so ONNX Runtime runs each as MatMulIntegerToFloat."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Batches(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.left = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.left, None)

    options = dict(_OPTIONS) | {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}
    try:
        with _quiet():
            quantize_static(
                str(path), str(out), Batches(), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel,
                reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude or []),
                calibrate_method=CalibrationMethod.MinMax, extra_options=options,
            )  # fmt: skip
    except Exception as e:
        raise _failed(e) from None
