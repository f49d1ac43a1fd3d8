"""Exact rewrites of an exported classifier's ONNX graph that make ONNX Runtime's CPU kernels
do less work; the outputs stay those of the graph they were given.

* ``split_skip_layer_norms``: ONNX Runtime's ``SkipLayerNormalization`` CPU kernel (what its
  transformer optimizer fuses residual Add + LayerNormalization into) measured 4 to 8 times
  slower than an ``Add`` followed by the standard ``LayerNormalization`` on this project's
  benchmark machine (onnxruntime 1.32, a (32, 25, 384) batch); the split graph is the same
  arithmetic.
* ``first_token_only``: a sequence classifier's head reads the first token of the last hidden
  state (``Gather(axis=1, index 0)``), so every position-wise step of the last layer (output
  projection, residual, LayerNorm, feed-forward) needs that token only. The Gather moves up
  to where the last layer's attention has mixed the tokens, and those steps run on one row per
  text instead of one per token.
* ``smooth_activations`` (SmoothQuant, Xiao et al. 2023): int8 activations are quantized per
  tensor, so a few channels with large values (the LayerNorm outputs and GELU outputs of BERT
  models have them) leave the others a handful of levels. Dividing those channels by
  ``s_j = max|x_j|^alpha / max|w_j|^(1 - alpha)`` before the MatMul and multiplying the
  weight's row j by ``s_j`` keeps ``x @ W`` as it was and moves the range into the weights,
  which are quantized per output channel. It costs one elementwise Mul per smoothed tensor.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "first_token_only",
    "head_nodes",
    "separate_matmul_inputs",
    "smooth_activations",
    "split_skip_layer_norms",
    "weighted_matmuls",
    "with_outputs",
]

MS_DOMAIN = "com.microsoft"

# ops whose output at sequence position t depends only on their inputs at position t (given
# that any constant input broadcasts over the last axis only)
POSITION_WISE = {
    "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "LayerNormalization", "Gelu", "BiasGelu", "FastGelu", "Erf", "Tanh", "Relu", "Sigmoid", "Sqrt", "Identity", "Cast",
}  # fmt: skip
WEIGHTED = {"MatMul", "Gemm"}  # the second input must be a constant matrix


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _constants(graph: Any) -> dict[str, Any]:
    """Tensor name -> its value (initializers and Constant nodes' outputs)."""
    from onnx import numpy_helper

    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            value = _attr(node, "value")
            if value is not None:
                values[node.output[0]] = value
    return {name: numpy_helper.to_array(t) for name, t in values.items()}


def split_skip_layer_norms(model: Any) -> int:
    """Every ``SkipLayerNormalization`` as Add (input + skip, + bias) and LayerNormalization;
    returns how many were split."""
    from onnx import helper

    graph = model.graph
    if _opset(model) < 17:  # no standard LayerNormalization before opset 17
        return 0
    nodes, split = [], 0
    for node in graph.node:
        # outputs 1 and 2 (mean, inverse std) are for training; a graph that reads them is left
        if node.op_type != "SkipLayerNormalization" or any(
            len(node.output) > i and node.output[i] for i in (1, 2)
        ):
            nodes.append(node)
            continue
        name = node.name or f"skip_layer_norm_{split}"
        x, skip, gamma = node.input[0], node.input[1], node.input[2]
        beta = node.input[3] if len(node.input) > 3 and node.input[3] else None
        bias = node.input[4] if len(node.input) > 4 and node.input[4] else None
        total = node.output[3] if len(node.output) > 3 and node.output[3] else f"{name}_sum"
        summed = f"{name}_input_skip" if bias else total
        nodes.append(helper.make_node("Add", [x, skip], [summed], name=f"{name}_add"))
        if bias:
            nodes.append(helper.make_node("Add", [summed, bias], [total], name=f"{name}_bias"))
        norm_inputs = [total, gamma] + ([beta] if beta else [])
        epsilon = float(_attr(node, "epsilon", 1e-12))
        norm = helper.make_node(
            "LayerNormalization", norm_inputs, [node.output[0]], name=f"{name}_norm", axis=-1,
            epsilon=epsilon,
        )  # fmt: skip
        nodes.append(norm)
        split += 1
    if split:
        del graph.node[:]
        graph.node.extend(nodes)
    return split


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _broadcasts_over_last_axis(value: Any) -> bool:
    shape = tuple(getattr(value, "shape", ()))
    return all(d == 1 for d in shape[:-1])


def _first_token_gather(graph: Any, constants: dict[str, Any]) -> tuple[int, Any] | None:
    """The head's ``Gather(hidden, 0, axis=1)``: (its index in the node list, the node)."""
    outputs = {o.name for o in graph.output}
    for i, node in enumerate(graph.node):
        if node.op_type != "Gather" or int(_attr(node, "axis", 0)) != 1:
            continue
        index = constants.get(node.input[1])
        if index is None or index.ndim != 0 or int(index) != 0 or node.input[0] in outputs:
            continue
        return i, node
    return None


def first_token_only(model: Any) -> list[str]:
    """Move the head's first-token Gather above the last layer's position-wise steps; returns
    the weighted nodes (MatMul, Gemm) that now run on that token only (none: nothing changed)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = _constants(graph)
    found = _first_token_gather(graph, constants)
    if found is None:
        return []
    at, gather = found
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    graph_outputs = {o.name for o in graph.output}
    region: set[int] = set()
    needed = {gather.input[0]}
    # reverse topological order: every consumer of a node is decided before the node is
    for i in range(at - 1, -1, -1):
        node = graph.node[i]
        outs = [o for o in node.output if o]
        if not any(o in needed for o in outs) or node.op_type not in POSITION_WISE:
            continue
        if any(o in graph_outputs for o in outs) or any(
            c != at and c not in region for o in outs for c in consumers.get(o, [])
        ):
            continue
        inputs = [name for name in node.input if name]
        if node.op_type in WEIGHTED and (len(inputs) < 2 or inputs[1] not in constants):
            continue
        if node.op_type in WEIGHTED:
            data = inputs[:1]
        else:  # a constant operand must not vary along the sequence (e.g. position embeddings)
            if any(n in constants and not _broadcasts_over_last_axis(constants[n]) for n in inputs):
                continue
            data = [n for n in inputs if n not in constants]
        if node.op_type == "LayerNormalization" and int(_attr(node, "axis", -1)) != -1:
            continue
        region.add(i)
        needed.update(data)
    weighted = [graph.node[i].name for i in sorted(region) if graph.node[i].op_type in WEIGHTED]
    if not weighted:
        return []
    produced = {o for i in region for o in graph.node[i].output}
    frontier = sorted(n for n in needed if n not in produced and n not in constants)
    index_name = f"{gather.name or 'first_token'}_index"
    graph.initializer.append(numpy_helper.from_array(constants[gather.input[1]], index_name))
    renamed = {name: f"{name}_first_token" for name in frontier}
    nodes = []
    for i, node in enumerate(graph.node):
        if i == at:  # the head's Gather: its input is the first token already
            nodes.append(
                helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)
            )
            continue
        if i in region:
            for k, name in enumerate(node.input):
                if name in renamed:
                    node.input[k] = renamed[name]
        nodes.append(node)
        for name in node.output:
            if name in renamed:
                nodes.append(
                    helper.make_node(
                        "Gather", [name, index_name], [renamed[name]], name=renamed[name], axis=1
                    )
                )
    for name in frontier:  # graph inputs (a head straight on the embeddings)
        if not any(name in node.output for node in graph.node):
            nodes.insert(
                0,
                helper.make_node(
                    "Gather", [name, index_name], [renamed[name]], name=renamed[name], axis=1
                ),
            )
    del graph.node[:]
    graph.node.extend(nodes)
    # the region's tensors lost their sequence axis: their recorded shapes no longer hold
    kept = [v for v in graph.value_info if v.name not in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return weighted


def weighted_matmuls(model: Any) -> list[Any]:
    """The MatMul and Gemm nodes whose second input is a constant matrix (what int8 quantizes),
    in graph order."""
    constants = {t.name for t in model.graph.initializer}
    return [
        n
        for n in model.graph.node
        if n.op_type in WEIGHTED and len(n.input) > 1 and n.input[1] in constants
    ]


def head_nodes(model: Any) -> list[str]:
    """The weighted nodes after the head's first-token Gather (pooler, classifier): they run on
    one row per text, so int8 saves nothing there."""
    found = _first_token_gather(model.graph, _constants(model.graph))
    if found is None:
        return []
    at, _ = found
    weighted = {n.name for n in weighted_matmuls(model) if n.name}
    return [n.name for n in list(model.graph.node)[at + 1 :] if n.name in weighted]


def separate_matmul_inputs(model: Any) -> int:
    """Give the weighted MatMuls an input of their own (an Identity) where the tensor also feeds
    other nodes: static QDQ quantizes a tensor for all its readers, so a residual Add reading
    the same LayerNorm output would add the int8-rounded value. Returns how many were split."""
    from onnx import helper

    graph = model.graph
    weighted = {n.name for n in weighted_matmuls(model)}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    split: dict[str, Any] = {}
    for name, nodes in readers.items():
        mine = [n for n in nodes if n.name in weighted and n.input[0] == name]
        if mine and len(mine) < len(nodes):
            split[name] = helper.make_node(
                "Identity", [name], [f"{name}_matmul_input"], name=f"{name}_matmul_input"
            )
            for node in mine:
                node.input[0] = f"{name}_matmul_input"
    _insert_after_producers(graph, split)
    return len(split)


def _insert_after_producers(graph: Any, new: dict[str, Any]) -> None:
    """Insert each node of ``new`` (tensor name -> a node reading it) right after the node
    that writes the tensor, or first for a graph input: the order stays topological."""
    if not new:
        return
    nodes = [new[i.name] for i in graph.input if i.name in new]
    for node in graph.node:
        nodes.append(node)
        nodes.extend(new[o] for o in node.output if o in new)
    del graph.node[:]
    graph.node.extend(nodes)


def with_outputs(model: Any, names: list[str]) -> Any:
    """A copy of ``model`` that also returns the float tensors ``names`` (for calibration)."""
    from onnx import TensorProto, helper

    copy = type(model)()
    copy.CopyFrom(model)
    known = {o.name for o in copy.graph.output}
    for name in names:
        if name not in known:
            copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return copy


def smooth_activations(
    model: Any, channel_max: dict[str, Any], *, alpha: float, min_ratio: float
) -> list[str]:
    """Smooth the inputs of the weighted MatMuls whose channels' largest absolute value
    (``channel_max``: tensor -> per-channel max |x| on calibration data) spreads more than
    ``min_ratio`` times their median; returns the tensors smoothed."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    readers: dict[str, list[Any]] = {}
    for node in weighted_matmuls(model):
        if node.op_type == "MatMul" and len(weights[node.input[1]].dims) == 2:
            readers.setdefault(node.input[0], []).append(node)
    muls: dict[str, Any] = {}
    for name, nodes in readers.items():
        x_max = channel_max.get(name)
        if x_max is None or x_max.ndim != 1 or x_max.size != weights[nodes[0].input[1]].dims[0]:
            continue
        x_max = np.maximum(x_max.astype(np.float64), 1e-5)
        if x_max.max() / np.median(x_max) < min_ratio:
            continue
        arrays = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]
        w_max = np.maximum(np.max([np.abs(w).max(axis=1) for w in arrays], axis=0), 1e-5)
        scale = np.clip(x_max**alpha / w_max ** (1 - alpha), 1e-2, 1e2)
        for node, w in zip(nodes, arrays, strict=True):
            scaled = (w.astype(np.float64) * scale[:, None]).astype(w.dtype)
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(scaled, node.input[1]))
            node.input[0] = f"{name}_smoothed"
        inverse = numpy_helper.from_array((1 / scale).astype(np.float32), f"{name}_smoothing")
        graph.initializer.append(inverse)
        muls[name] = helper.make_node(
            "Mul", [name, inverse.name], [f"{name}_smoothed"], name=f"{name}_smooth"
        )
    _insert_after_producers(graph, muls)
    return sorted(muls)
