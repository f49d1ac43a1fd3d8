"""``onnx`` and ``onnx-int8``: the model exported to ONNX and run by ONNX Runtime."""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

from trustune.compress.methods import (
    Compressed,
    Job,
    Method,
    register_method,
    save_model_parts,
    torch_parent,
)
from trustune.compress.onnx_export import export_onnx, fuse_onnx, quantize_onnx_dynamic
from trustune.errors import ConfigError
from trustune.models.onnx_model import ONNX_FILE

__all__ = ["OnnxInt8Method", "OnnxMethod"]


def _engine() -> str:
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError(
            "the onnx methods need ONNX Runtime and the exporter's packages: "
            "pip install 'trustune[onnx]'"
        ) from None
    return f"onnxruntime {onnxruntime.__version__}"


def _takes_token_types(model: Any) -> bool:
    try:
        return "token_type_ids" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _export(job: Job, work: Path, method: str) -> tuple[Path, dict[str, Any]]:
    """The exported (and, where ONNX Runtime knows the architecture, fused) graph in ``work``."""
    model = torch_parent(job, method)
    raw = work / "exported.onnx"
    exporter = export_onnx(model, raw, token_types=_takes_token_types(model))
    fused = work / "fused.onnx"
    did_fuse = fuse_onnx(raw, fused, model.config)
    return (fused if did_fuse else raw), {"exporter": exporter, "fused": did_fuse}


@register_method
class OnnxMethod(Method):
    name = "onnx"
    summary = "export to ONNX, fuse attention/LayerNorm/GELU, run with ONNX Runtime (fp32)"

    def check(self, job: Job) -> None:
        _engine()
        torch_parent(job, self.name)

    def apply(self, job: Job) -> Compressed:
        engine = _engine()
        with tempfile.TemporaryDirectory(prefix="trustune-onnx-") as tmp:
            graph, chosen = _export(job, Path(tmp), self.name)
            graph.replace(job.model_dir / ONNX_FILE)
        save_model_parts(job)
        return Compressed(engine=engine, format="onnx", settings=chosen)


@register_method
class OnnxInt8Method(Method):
    name = "onnx-int8"
    summary = "ONNX Runtime with dynamic int8 quantization of the weights (activations per batch)"

    def check(self, job: Job) -> None:
        _engine()
        torch_parent(job, self.name)

    def apply(self, job: Job) -> Compressed:
        from trustune.compress.hardware import int8_is_fast

        engine = _engine()
        notes = []
        if not int8_is_fast():
            notes.append(
                "this CPU has no VNNI/AMX int8 instructions: int8 may run slower than fp32 here "
                "(compare with `trustune compare`)"
            )
        with tempfile.TemporaryDirectory(prefix="trustune-onnx-") as tmp:
            graph, chosen = _export(job, Path(tmp), self.name)
            quantized = Path(tmp) / "int8.onnx"
            quantize_onnx_dynamic(graph, quantized)
            quantized.replace(job.model_dir / ONNX_FILE)
        save_model_parts(job)
        chosen |= {"quantization": "dynamic", "weights": "int8 per tensor (QInt8)"}
        return Compressed(
            engine=engine, format="onnx", settings=chosen, notes=notes,
        )  # fmt: skip
