"""`--method onnx-int8[:static]`: the exact graph rewrites, the calibrated search (smoothing and
the float fallback), static QDQ, the modes' errors and what the manifest records. Tiny random
BERT runs; the quantized graphs are inspected node by node."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import trustune
from trustune.compress import CompressSettings, Job, MethodSpec, compress
from trustune.errors import ConfigError

NO_GUARD = CompressSettings(max_drop=100.0)  # the tiny models are random: measure, do not judge
TEXTS = ["I was charged twice this month", "the app crashes on start", "where is my parcel"]


def _graph(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def _float_weighted(model: Any) -> set[str]:
    """Names of the MatMul/Gemm nodes that still multiply by a float constant matrix (dynamic
    quantization rewrites a Gemm X as MatMul "X_MatMul" + Add, excluded or not)."""
    from trustune.compress.onnx_graph import weighted_matmuls

    return {n.name.removesuffix("_MatMul") for n in weighted_matmuls(model)}


@pytest.fixture(scope="module")
def job(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Job:
    from trustune.compress.guard import read_validation

    parent = trustune.load(tiny_run)
    folder = tmp_path_factory.mktemp("job") / "model"
    folder.mkdir()
    return Job(
        parent=parent, model_dir=folder, spec=MethodSpec("onnx-int8"), settings=CompressSettings(),
        validation=read_validation(parent, demo_files[1]),
    )  # fmt: skip


@pytest.fixture(scope="module")
def exported(job: Job, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny parent exported and fused as the ONNX methods do it."""
    from trustune.compress.onnx_methods import _export

    graph, _ = _export(job, tmp_path_factory.mktemp("export"), "onnx-int8")
    return graph


def _calibration(job: Job, graph: Path) -> Any:
    from trustune.compress.onnx_methods import _calibration

    return _calibration(job, graph)


def test_graph_rewrites_are_exact(job: Job, exported: Path, tmp_path: Path) -> None:
    import onnx

    from trustune.compress.onnx_graph import (
        first_token_only,
        head_nodes,
        split_skip_layer_norms,
    )

    calibration = _calibration(job, exported)
    model = _graph(exported)
    head = head_nodes(model)
    assert len(head) == 2  # pooler, classifier
    assert split_skip_layer_norms(model) > 0
    moved = first_token_only(model)
    assert moved and not set(moved) & set(head)  # the last layer's out-proj and feed-forward
    assert "SkipLayerNormalization" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp_path / "rewritten.onnx"))
    before = calibration.outputs(exported)
    after = calibration.outputs(tmp_path / "rewritten.onnx")
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_smoothing_keeps_the_float_outputs(job: Job, exported: Path, tmp_path: Path) -> None:
    import onnx

    from trustune.compress.onnx_graph import smooth_activations, weighted_matmuls, with_outputs

    calibration = _calibration(job, exported)
    model = _graph(exported)
    inputs = sorted({n.input[0] for n in weighted_matmuls(model) if n.op_type == "MatMul"})
    before, channel_max = calibration.outputs_and_ranges(
        with_outputs(model, inputs).SerializeToString(), inputs
    )
    smoothed = smooth_activations(model, channel_max, alpha=0.8, min_ratio=1.0)  # every input
    assert smoothed == inputs
    onnx.save(model, str(tmp_path / "smoothed.onnx"))
    np.testing.assert_allclose(calibration.outputs(tmp_path / "smoothed.onnx"), before, atol=1e-4)


def test_excluded_nodes_stay_float(exported: Path, tmp_path: Path) -> None:
    from trustune.compress.onnx_export import quantize_onnx_dynamic
    from trustune.compress.onnx_graph import head_nodes

    model = _graph(exported)
    weighted = sorted(_float_weighted(model))
    keep = [*head_nodes(model), weighted[0]]  # a Gemm of the head and a MatMul of the encoder
    quantize_onnx_dynamic(exported, tmp_path / "int8.onnx", exclude=keep)
    quantized = _graph(tmp_path / "int8.onnx")
    assert _float_weighted(quantized) == set(keep)
    assert sum(n.op_type == "MatMulInteger" for n in quantized.graph.node) == len(weighted) - len(
        keep
    )


def test_the_fallback_search_tries_each_group_and_keeps_the_sensitive_ones_float(
    job: Job, exported: Path, tmp_path: Path
) -> None:
    from trustune.compress.fallback import (
        HEAD_REASON,
        MAX_FLOAT_GROUPS,
        choose_quantization,
        node_groups,
    )
    from trustune.compress.onnx_graph import head_nodes
    from trustune.compress.onnx_methods import _dynamic

    model = _graph(exported)
    head = head_nodes(model)
    groups = node_groups(model, set(head))
    assert len(groups) == 4  # 2 layers: attention and feed-forward each
    choice = choose_quantization(
        exported, tmp_path, _calibration(job, exported), quantize=partial(_dynamic, reduce_range=False),
        budget_points=-1.0,  # nothing is good enough: the fallback runs as far as it may
        keep_float=dict.fromkeys(head, HEAD_REASON),
    )  # fmt: skip
    labels = [t.label for t in choice.trials]
    assert labels[0] == "int8"
    assert sum(label.endswith("in float") and "+" not in label for label in labels) == len(groups)
    fallback = {n: why for n, why in choice.float_nodes.items() if n not in head}
    assert all(why.startswith("float fallback (group") for why in fallback.values())
    assert len({why for why in fallback.values()}) <= MAX_FLOAT_GROUPS
    assert set(choice.float_nodes) == _float_weighted(_graph(choice.trial.path))
    record = choice.settings()
    assert record["search"]["chosen"] == choice.trial.label
    assert [f["node"] for f in record["float_nodes"]] == list(choice.float_nodes)


@pytest.mark.parametrize("method", ["onnx-int8", "onnx-int8:static"])
def test_each_mode_writes_a_run_that_follows_its_parent(
    method: str, tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = compress(
        tiny_run, method=method, output=tmp_path / "run", data=demo_files[1], settings=NO_GUARD
    )
    parent, child = trustune.load(tiny_run), trustune.load(out.path)
    expected, got = parent.logits(TEXTS), child.logits(TEXTS)
    assert np.abs(got - expected).max() <= 0.1
    assert [p.label for p in child.predict(TEXTS)] == [p.label for p in parent.predict(TEXTS)]
    record = child.manifest.compression
    assert record is not None and record.method == method
    settings = record.settings
    mode = method.partition(":")[2] or "dynamic"
    assert settings["quantization"] == mode
    assert settings["weights"].startswith("int8 per output channel")
    assert settings["rewrites"]["skip_layer_norms_split"] > 0
    assert settings["search"]["trials"][0]["trial"] == "int8"
    assert 0.0 <= settings["search"]["trials"][0]["agreement"] <= 1.0
    graph = _graph(out.path / "model" / "model.onnx")
    ops = {n.op_type for n in graph.graph.node}
    float_nodes = {f["node"]: f["why"] for f in settings["float_nodes"]}
    assert float_nodes and set(float_nodes) == _float_weighted(graph)
    if mode == "static":
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        assert "calibrated" in settings["activations"]
        assert any(why.startswith("runs on the first token only") for why in float_nodes.values())
    else:
        assert "DynamicQuantizeLinear" in ops
        assert settings["activations"] == "uint8, range per batch"


def test_an_unknown_mode_lists_the_modes(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(
        ConfigError,
        match=r"onnx-int8:bogus: unknown mode 'bogus'; choose onnx-int8 \(dynamic: .*\) or onnx-int8:static \(",
    ):
        compress(tiny_run, method="onnx-int8:bogus", output=tmp_path / "x", data=demo_files[1])
    assert not (tmp_path / "x").exists()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "compress", str(tiny_run), "--method",
         "onnx-int8:bogus", "--data", str(demo_files[1]), "--output", str(tmp_path / "y")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "onnx-int8:static" in lines[0] and "Traceback" not in done.stderr
