"""``onnx`` and ``onnx-int8``: the model exported to ONNX and run by ONNX Runtime.

Both export the parent (``onnx_export.py``), fuse what ONNX Runtime's transformer optimizer
fuses, and rewrite the graph exactly (``onnx_graph.py``: residual Add + LayerNormalization
instead of the slow fused kernel, the last layer's position-wise steps on the first token
only), checked on the calibration sample against the unrewritten graph. ``onnx-int8`` then
quantizes as ``fallback.py`` measures best on that sample: int8 everywhere but the head,
SmoothQuant smoothing where it helps, and a float fallback for the most sensitive layers when
the estimated drop exceeds ``--max-drop``. ``onnx-int8`` (``:dynamic``) quantizes activations
per batch at run time; ``onnx-int8:static`` with ranges calibrated on the sample (QDQ).
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustune.compress.methods import (
    Compressed,
    Job,
    Method,
    register_method,
    save_model_parts,
    torch_parent,
)
from trustune.compress.onnx_export import (
    export_onnx,
    fuse_onnx,
    quantize_onnx_dynamic,
    quantize_onnx_static,
)
from trustune.errors import ConfigError
from trustune.models.onnx_model import ONNX_FILE

if TYPE_CHECKING:
    from trustune.compress.fallback import Calibration

__all__ = ["INT8_MODES", "OnnxInt8Method", "OnnxMethod"]

# onnx-int8:MODE -> what it does (the bare name is the first)
INT8_MODES = {
    "dynamic": "activations quantized per batch at run time",
    "static": "activation ranges fixed on --data rows, QDQ",
}


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


def _calibration(job: Job, graph: Path) -> Calibration:
    import onnx

    from trustune.compress.fallback import Calibration

    inputs = [i.name for i in onnx.load(str(graph), load_external_data=False).graph.input]
    return Calibration.from_job(job, inputs)


def _rewrite(graph: Path, out: Path, calibration: Calibration) -> tuple[Path, dict[str, Any]]:
    """``onnx_graph``'s exact rewrites of ``graph`` into ``out``, kept only where the outputs on
    the sample's first rows match the unrewritten graph's; returns the graph and the record."""
    import numpy as np
    import onnx

    from trustune.compress.onnx_graph import first_token_only, split_skip_layer_norms

    model = onnx.load(str(graph))
    split, first = split_skip_layer_norms(model), first_token_only(model)
    if not split and not first:
        return graph, {}
    onnx.save(model, str(out))
    check = calibration.first(2)  # exactness needs no statistics: 64 rows
    before, after = check.outputs(graph), check.outputs(out)
    diff = float(np.abs(before.astype(np.float64) - after).max())
    if not diff <= 1e-3 * max(1.0, float(np.abs(before).max())):
        return graph, {"rewrites": f"skipped: the outputs moved by {diff:.3g}"}
    return out, {
        "rewrites": {
            "skip_layer_norms_split": split,
            "first_token_matmuls": first,
            "max_abs_output_diff": diff,
        }
    }


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
            graph, rewrites = _rewrite(
                graph, Path(tmp) / "rewritten.onnx", _calibration(job, graph)
            )
            graph.replace(job.model_dir / ONNX_FILE)
        save_model_parts(job)
        return Compressed(engine=engine, format="onnx", settings=chosen | rewrites)


def _mode(job: Job) -> str:
    mode = job.spec.argument or "dynamic"
    if mode not in INT8_MODES:
        usage = [f"onnx-int8 ({m}: {what})" if i == 0 else f"onnx-int8:{m} ({what})"
                 for i, (m, what) in enumerate(INT8_MODES.items())]  # fmt: skip
        raise ConfigError(
            f"--method onnx-int8:{mode}: unknown mode {mode!r}; choose {' or '.join(usage)}"
        )
    return mode


@register_method
class OnnxInt8Method(Method):
    name = "onnx-int8"
    summary = "ONNX Runtime, int8, calibrated on --data (onnx-int8:static: fixed ranges)"
    argument = "MODE"
    argument_default = ""  # the bare name: dynamic (parse_method keeps the spec "onnx-int8")

    def check(self, job: Job) -> None:
        _mode(job)
        _engine()
        torch_parent(job, self.name)

    def apply(self, job: Job) -> Compressed:
        from functools import partial

        import onnx

        from trustune.compress.fallback import HEAD_REASON, choose_quantization
        from trustune.compress.hardware import int8_is_fast
        from trustune.compress.onnx_graph import head_nodes

        engine, mode = _engine(), _mode(job)
        notes = []
        vnni = int8_is_fast()
        if not vnni:
            notes.append(
                "this CPU has no VNNI/AMX int8 instructions: int8 may run slower than fp32 here "
                "(compare with `trustune compare`)"
            )
        with tempfile.TemporaryDirectory(prefix="trustune-onnx-") as tmp:
            work = Path(tmp)
            graph, chosen = _export(job, work, str(job.spec))
            calibration = _calibration(job, graph)
            keep_float = dict.fromkeys(
                head_nodes(onnx.load(str(graph), load_external_data=False)), HEAD_REASON
            )
            graph, rewrites = _rewrite(graph, work / "rewritten.onnx", calibration)
            # 7-bit weights without VNNI: the AVX2 u8s8 kernels can saturate with 8 bits
            quantize: Any = partial(_dynamic, reduce_range=not vnni)
            if mode == "static":
                graph = _static_input(graph, work / "static-input.onnx")
                done = rewrites.get("rewrites")
                first = done.get("first_token_matmuls", []) if isinstance(done, dict) else []
                keep_float |= dict.fromkeys(first, FIRST_TOKEN_STATIC_REASON)
                quantize = partial(_static, batches=calibration.feeds, reduce_range=not vnni)
            choice = choose_quantization(
                graph, work, calibration, quantize=quantize,
                budget_points=job.settings.max_drop, keep_float=keep_float,
                progress=job.progress,
            )  # fmt: skip
            choice.trial.path.replace(job.model_dir / ONNX_FILE)
        save_model_parts(job)
        fallback = [n for n, why in choice.float_nodes.items() if why.startswith("float fallback")]
        if fallback:
            notes.append(
                f"the float fallback kept {len(fallback)} weighted nodes in float to stay within "
                "--max-drop: slower than all-int8 (measure with `trustune compare`)"
            )
        weights = "int8 per output channel (QInt8" + (")" if vnni else ", 7-bit range)")
        activations = (
            "uint8, range per batch"
            if mode == "dynamic"
            else f"uint8, ranges calibrated (min/max) on {calibration.rows} rows of --data"
        )
        chosen |= rewrites | {
            "quantization": mode, "weights": weights, "activations": activations,
        } | choice.settings()  # fmt: skip
        return Compressed(engine=engine, format="onnx", settings=chosen, notes=notes)


FIRST_TOKEN_STATIC_REASON = (
    "runs on the first token only: ONNX Runtime fuses this 2-D MatMul into a Gemm before its "
    "QDQ fusions, so static int8 would dequantize the weights on every call"
)


def _static_input(graph: Path, out: Path) -> Path:
    import onnx

    from trustune.compress.onnx_graph import separate_matmul_inputs

    model = onnx.load(str(graph))
    if not separate_matmul_inputs(model):
        return graph
    onnx.save(model, str(out))
    return out


def _dynamic(source: Path, out: Path, exclude: list[str], *, reduce_range: bool) -> None:
    quantize_onnx_dynamic(source, out, exclude=exclude, reduce_range=reduce_range)


def _static(
    source: Path, out: Path, exclude: list[str], *, batches: list[Any], reduce_range: bool
) -> None:
    quantize_onnx_static(source, out, batches=batches, exclude=exclude, reduce_range=reduce_range)
