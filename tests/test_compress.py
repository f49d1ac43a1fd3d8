"""`trustune compress`: each built-in method on tiny classification and regression runs, the
accuracy guard, lineage, the ONNX model in every consumer (predict, evaluate, explain, serve),
encrypted parents, and the bad inputs of the command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import trustune
from trustune.compress import Compressed, CompressSettings, Job, Method, compress, register_method
from trustune.compress.methods import save_model_parts, torch_parent
from trustune.errors import AccuracyDropError, ArtifactError, ConfigError, LabelError, ModelError
from trustune.models.onnx_model import OnnxSequenceModel

ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
ENV.pop("TRUSTUNE_KEY_FILE", None)
ENV.pop("TRUSTUNE_KEY", None)
NO_GUARD = CompressSettings(max_drop=100.0)  # the tiny models are random: measure, do not judge

# how far each method's outputs may move from the parent's (logits of the tiny random models)
TOLERANCE = {"onnx": 1e-4, "onnx-int8": 0.1, "int8": 0.1, "bf16": 0.05}


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", *map(str, args)],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def compressed_runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, demo_files: tuple[Path, Path]
) -> dict[str, Path]:
    """The tiny classification run through every built-in single method."""
    out = tmp_path_factory.mktemp("compressed")
    runs = {}
    for method in TOLERANCE:
        runs[method] = compress(
            tiny_run, method=method, output=out / method, data=demo_files[1], settings=NO_GUARD
        ).path
    return runs


@pytest.mark.parametrize("method", list(TOLERANCE))
def test_each_method_loads_predicts_and_follows_its_parent(
    method: str, compressed_runs: dict[str, Path], tiny_run: Path, demo_files: tuple[Path, Path]
) -> None:
    parent = trustune.load(tiny_run)
    child = trustune.load(compressed_runs[method])
    texts = ["I was charged twice this month", "the app crashes on start", "where is my parcel"]
    expected, got = parent.logits(texts), child.logits(texts)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE[method]
    assert [p.label for p in child.predict(texts)] == [p.label for p in parent.predict(texts)]
    result = child.evaluate(demo_files[1], measure_latency=False)
    assert 0.0 <= result["accuracy"] <= 1.0
    manifest = child.manifest
    assert manifest.compression is not None
    assert manifest.compression.method == method
    assert manifest.compression.parent is not None
    assert manifest.compression.parent["run"] == str(tiny_run.resolve())
    guard = manifest.compression.guard
    assert guard is not None and guard["metric"] == "accuracy"
    assert guard["parent"] == pytest.approx(
        parent.evaluate(demo_files[1], measure_latency=False)["accuracy"]
    )
    assert guard["drop_points"] == pytest.approx((guard["parent"] - guard["compressed"]) * 100)
    assert manifest.compression.hardware and "avx512_vnni" in manifest.compression.hardware
    assert isinstance(child.model, OnnxSequenceModel) == method.startswith("onnx")


def test_a_compressed_manifest_reads_and_writes_back_byte_for_byte(
    compressed_runs: dict[str, Path], tmp_path: Path
) -> None:
    from trustune.manifest import read_manifest, write_manifest

    for run in compressed_runs.values():
        original = (run / "trustune.json").read_bytes()
        write_manifest(tmp_path, read_manifest(run))
        assert (tmp_path / "trustune.json").read_bytes() == original


def test_onnx_files_and_sizes(compressed_runs: dict[str, Path], tiny_run: Path) -> None:
    onnx_dir = compressed_runs["onnx"] / "model"
    assert (onnx_dir / "model.onnx").is_file()
    assert not list(onnx_dir.glob("*.safetensors"))
    int8 = (compressed_runs["onnx-int8"] / "model" / "model.onnx").stat().st_size
    assert int8 < (onnx_dir / "model.onnx").stat().st_size
    parent_size = (tiny_run / "model" / "model.safetensors").stat().st_size
    bf16 = compressed_runs["bf16"] / "model" / "model.safetensors"
    assert bf16.stat().st_size < 0.6 * parent_size
    # the bf16 run is a plain transformers checkpoint
    import torch
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(compressed_runs["bf16"] / "model")
    assert plain.dtype == torch.bfloat16


def test_regression_runs_compress_too(
    regression_run: Path, pair_files: tuple[Path, Path], tmp_path: Path
) -> None:
    parent = trustune.load(regression_run)
    first, second = ["a cat plays guitar", "red car drives fast"], ["a cat plays", "blue car"]
    for method in ("onnx", "int8"):
        result = compress(
            regression_run, method=method, output=tmp_path / method, data=pair_files[1],
            settings=NO_GUARD,
        )  # fmt: skip
        assert result.guard["metric"] == "spearman"
        assert "prediction_agreement" not in result.guard
        child = trustune.load(result.path)
        np.testing.assert_allclose(
            child.logits(first, second), parent.logits(first, second), atol=TOLERANCE[method]
        )
        assert len(child.predict(first, second)) == 2


def test_onnx_explains_with_perturbations_not_gradients(compressed_runs: dict[str, Path]) -> None:
    child = trustune.load(compressed_runs["onnx"])
    for method, options in (("occlusion", {}), ("kernel-shap", {"n_samples": 32})):
        [e] = child.explain(["the app crashes on start"], method=method, **options)
        assert e.words and len(e.scores) == len(e.words)
    with pytest.raises(ModelError, match="runs on ONNX Runtime, which computes no gradients"):
        child.explain(["the app crashes on start"], method="integrated-gradients")


def test_onnx_run_serves(compressed_runs: dict[str, Path]) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from test_serve_support import bearer, make_store
    from trustune.serve import create_app

    store, keys = make_store(compressed_runs["onnx"].parent / "serve.db")
    child = trustune.load(compressed_runs["onnx"])
    try:
        with TestClient(create_app(child, store=store)) as client:
            response = client.post(
                "/v1/predict", json={"texts": ["where is my parcel"]}, headers=bearer(keys.predict)
            )
            assert response.status_code == 200, response.text
            [prediction] = response.json()["predictions"]
            assert prediction["label"] == child.predict(["where is my parcel"])[0].label
    finally:
        store.close()


@register_method
class _NegateHead(Method):
    """A test method that ruins the model (its classifier outputs negated): the guard's case."""

    name = "test-negate-head"
    summary = "tests only"

    def apply(self, job: Job) -> Compressed:
        import torch

        model = torch_parent(job, self.name)
        with torch.no_grad():
            model.classifier.weight.neg_()
            model.classifier.bias.neg_()
            model.save_pretrained(job.model_dir, safe_serialization=True)
            model.classifier.weight.neg_()
            model.classifier.bias.neg_()
        save_model_parts(job, config=False)
        return Compressed(engine="tests")


@pytest.fixture(scope="module")
def agreeing_data(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Demo texts labeled with the tiny run's own predictions: the parent scores 100% on them,
    so any change of prediction is a drop (the tiny random model alone is near chance)."""
    import csv

    texts = [row["text"] for row in csv.DictReader(demo_files[1].open(encoding="utf-8"))]
    labels = [p.label for p in trustune.load(tiny_run).predict(texts)]
    path = tmp_path_factory.mktemp("agreeing") / "agreeing.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def test_the_guard_refuses_a_bad_compression_and_writes_nothing(
    tiny_run: Path, agreeing_data: Path, tmp_path: Path
) -> None:
    target = tmp_path / "ruined"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(AccuracyDropError, match="more than --max-drop 1; nothing was written"):
        compress(tiny_run, method="test-negate-head", output=target, data=agreeing_data)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no staging left either
    forced = compress(
        tiny_run, method="test-negate-head", output=target, data=agreeing_data,
        settings=CompressSettings(force=True),
    )  # fmt: skip
    assert forced.guard["parent"] == 1.0
    assert forced.guard["forced"] is True and forced.guard["drop_points"] > 1
    assert trustune.load(target).manifest.compression.guard["forced"] is True  # type: ignore[union-attr]


def test_encrypted_parent_gives_an_encrypted_onnx_child(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from trustune.security import encrypt_run, generate_key

    key = generate_key()
    sealed = encrypt_run(tiny_run, key=key, output=tmp_path / "sealed")
    result = compress(
        sealed, method="onnx", output=tmp_path / "child", data=demo_files[1], key=key,
        settings=NO_GUARD,
    )  # fmt: skip
    child_dir = result.path
    files = sorted(str(p.relative_to(child_dir)) for p in child_dir.rglob("*") if p.is_file())
    assert "model/model.onnx.enc" in files
    assert not [f for f in files if f.endswith((".onnx", ".safetensors", "tokenizer.json"))]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child", "sealed"]  # nothing staged
    with pytest.raises(Exception, match="encrypted"):
        trustune.load(child_dir)
    child = trustune.load(child_dir, key=key)
    assert isinstance(child.model, OnnxSequenceModel)
    parent = trustune.load(tiny_run)
    texts = ["where is my parcel", "the app crashes on start"]
    np.testing.assert_allclose(child.logits(texts), parent.logits(texts), atol=1e-4)


def test_unseen_labels_in_the_data_are_refused(tiny_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello there,nonsense-label\nanother one,billing\n")
    with pytest.raises(LabelError):
        compress(tiny_run, method="onnx", output=tmp_path / "x", data=bad)
    assert not (tmp_path / "x").exists()


def test_method_names_are_checked(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"known: .*onnx-int8"):
        compress(tiny_run, method="zip", output=tmp_path / "x")
    with pytest.raises(ConfigError, match="takes no argument"):
        compress(tiny_run, method="onnx:3", output=tmp_path / "x")
    with pytest.raises(ArtifactError, match="not a run folder"):
        compress(tmp_path / "missing", method="int8", output=tmp_path / "x")


def test_compressing_an_onnx_run_with_a_torch_method_says_why(
    compressed_runs: dict[str, Path], demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="needs a PyTorch model"):
        compress(compressed_runs["onnx"], method="int8", output=tmp_path / "x", data=demo_files[1])


def test_cli_compress_and_its_refusals(
    tiny_run: Path, demo_files: tuple[Path, Path], agreeing_data: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from trustune.cli import main as cli_main

    out = tmp_path / "cli-onnx"
    done = cli("compress", tiny_run, "--method", "onnx", "--data", demo_files[1], "--output",
               out, "--max-drop", "100", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["format"] == "onnx" and result["guard"]["metric"] == "accuracy"
    predicted = cli("predict", out, "--text", "where is my parcel", "--json")
    assert predicted.returncode == 0, predicted.stderr

    def refused(*args: str | Path) -> str:  # the same main(), in this process (seconds saved)
        capsys.readouterr()
        assert cli_main.main([str(a) for a in args]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in lines[0], lines
        return lines[0]

    data = ("--data", demo_files[1])
    assert "already exists; pass --overwrite" in refused(
        "compress", tiny_run, "--method", "onnx", *data, "--output", out
    )
    assert "unknown compression method 'zip'; known: " in refused(
        "compress", tiny_run, "--method", "zip", *data, "--output", tmp_path / "y"
    )
    assert "drops accuracy by" in refused(
        "compress", tiny_run, "--method", "test-negate-head", "--data", agreeing_data,
        "--output", tmp_path / "z",
    )  # fmt: skip
    assert not (tmp_path / "z").exists() and not (tmp_path / "y").exists()
    assert "--max-drop must be >= 0 points" in refused(
        "compress", tiny_run, "--method", "onnx", *data, "--output", tmp_path / "z",
        "--max-drop", "-1",
    )  # fmt: skip


def test_help_lists_every_method() -> None:
    from trustune.cli.compress import METHODS_HELP
    from trustune.compress import known_methods

    listed = {usage.split(":")[0] for usage, _ in METHODS_HELP}
    builtin = {n for n in known_methods() if not n.startswith("test-")}
    assert listed == builtin
    from test_docs_commands import check_command
    from trustune.cli.compress import EXAMPLES
    from trustune.cli.main import build_parser

    for _, command in EXAMPLES:  # the examples of --help are commands that parse
        check_command(" ".join(command.replace("\\\n", " ").split()))

    shown = " ".join(
        build_parser()._subparsers._group_actions[0].choices["compress"].format_help().split()
    )  # type: ignore[union-attr]
    for usage, _ in METHODS_HELP:
        assert usage in shown


def test_auto_measures_every_candidate_and_keeps_the_fastest(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from trustune.compress.auto import CANDIDATES

    result = compress(
        tiny_run, method="auto", output=tmp_path / "auto", data=demo_files[1], settings=NO_GUARD
    )
    rows = {row["method"]: row for row in result.candidates}
    assert set(rows) == set(CANDIDATES)
    measured = {n: r for n, r in rows.items() if r["status"] != "skipped"}
    [chosen] = [n for n, r in measured.items() if r["status"] == "chosen"]
    assert rows[chosen]["throughput_per_s"] == max(r["throughput_per_s"] for r in measured.values())
    manifest = trustune.load(result.path).manifest
    assert manifest.compression is not None
    assert manifest.compression.settings["chosen"] == chosen
    assert [c["method"] for c in manifest.compression.candidates] == list(CANDIDATES)
    assert not (tmp_path / "auto" / ".candidates").exists()
    assert not (tmp_path / "auto" / "model" / ".candidates").exists()


def test_auto_refuses_when_no_candidate_is_close_enough(
    tiny_run: Path, agreeing_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trustune.compress.auto as auto

    monkeypatch.setattr(auto, "CANDIDATES", ("test-negate-head",))
    with pytest.raises(AccuracyDropError, match="no candidate stays within --max-drop"):
        compress(tiny_run, method="auto", output=tmp_path / "auto", data=agreeing_data)
    assert not (tmp_path / "auto").exists()


def test_a_signed_onnx_run_loads_from_verified_bytes(
    compressed_runs: dict[str, Path], tmp_path: Path
) -> None:
    from trustune.errors import IntegrityError
    from trustune.security import (
        generate_signing_key,
        read_signing_key,
        sign_run,
        write_signing_key,
    )

    run = tmp_path / "signed"
    shutil.copytree(compressed_runs["onnx-int8"], run)
    private, _ = write_signing_key(tmp_path / "signer", generate_signing_key())
    sign_run(run, read_signing_key(private))
    public = private.with_name(private.name + ".pub")
    child = trustune.load(run, public_key=public)
    assert isinstance(child.model, OnnxSequenceModel)
    assert len(child.predict(["where is my parcel"])) == 1
    graph = run / "model" / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-16] + bytes(16))  # tampered after signing
    with pytest.raises(IntegrityError):
        trustune.load(run, public_key=public)
