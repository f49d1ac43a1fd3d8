"""`prune:SPARSITY` and `distill:LAYERS`: smaller models that load in plain transformers, the
recovery fine-tune's data policy (never the guard's rows; a DP parent only on public texts),
regression, and the one-line refusals of bad arguments."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trustune
from trustune.compress import CompressSettings, compress
from trustune.compress.distill import kept_layers
from trustune.compress.recovery import MIN_STEPS, planned_epochs
from trustune.errors import ConfigError, PrivacyError
from trustune.manifest import PrivacyRecord, read_manifest, write_manifest

# the tiny models are random: measure, do not judge; one epoch keeps the tests short
QUICK = CompressSettings(max_drop=100.0, recovery_epochs=1)
TEXTS = ["I was charged twice this month", "the app crashes on start", "where is my parcel"]
ENV = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def _config(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "model" / "config.json").read_text(encoding="utf-8"))
    return data


def _plain_logits(run: Path, texts: list[str]) -> np.ndarray:
    """The run's model/ opened by plain transformers, as any other tool would open it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "model")
    with torch.no_grad():
        out = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    return np.asarray(out.float().numpy())


def _copy_run(run: Path, target: Path, **changes: Any) -> Path:
    """A copy of ``run`` whose manifest has ``changes`` (a cheap stand-in for another run)."""
    shutil.copytree(run, target)
    write_manifest(target, dataclasses.replace(read_manifest(target), **changes))
    return target


def _write_texts(path: Path, texts: list[str]) -> Path:
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def _public_texts(tmp_path: Path) -> Path:
    """Texts like the demo data, but not its rows: another seed of the generator."""
    from trustune.data.demo import write_demo_dataset

    train, _ = write_demo_dataset(tmp_path / "public", rows=80, seed=11)
    with train.open(encoding="utf-8", newline="") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    return _write_texts(tmp_path / "public.txt", texts)


@pytest.fixture(scope="module")
def pruned(
    tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, demo_files: tuple[Path, Path]
) -> Path:
    out = tmp_path_factory.mktemp("pruned") / "half"
    return compress(
        tiny_run, method="prune:0.5", output=out, data=demo_files[1], settings=QUICK
    ).path


def test_prune_shrinks_the_feed_forward_blocks_and_loads_in_plain_transformers(
    pruned: Path, tiny_run: Path, demo_files: tuple[Path, Path]
) -> None:
    assert _config(tiny_run)["intermediate_size"] == 64
    assert _config(pruned)["intermediate_size"] == 32
    parent, child = trustune.load(tiny_run), trustune.load(pruned)
    count = sum(p.numel() for p in child.model.parameters())
    assert count < sum(p.numel() for p in parent.model.parameters())
    assert child.manifest.model.parameters == count
    for layer in child.model.bert.encoder.layer:
        assert layer.intermediate.dense.out_features == 32
        assert layer.output.dense.in_features == 32
    parent_size = (tiny_run / "model" / "model.safetensors").stat().st_size
    assert (pruned / "model" / "model.safetensors").stat().st_size < parent_size
    np.testing.assert_allclose(_plain_logits(pruned, TEXTS), child.logits(TEXTS), atol=1e-5)
    assert {p.label for p in child.predict(TEXTS)} <= set(parent.labels)
    record = child.manifest.compression
    assert record is not None and record.method == "prune:0.5"
    assert record.parent is not None and record.parent["run"] == str(tiny_run.resolve())
    guard = record.guard
    assert guard is not None and guard["metric"] == "accuracy"
    assert guard["rows"] == child.evaluate(demo_files[1], measure_latency=False)["data"]["rows"]
    assert 0.0 <= guard["prediction_agreement"] <= 1.0
    settings = record.settings
    assert settings["sparsity"] == 0.5 and settings["sparsity_achieved"] == 0.5
    assert settings["intermediate_size"] == {"before": 64, "after": 32}
    recovery = settings["recovery"]
    assert recovery["epochs"] == 1 and recovery["steps"] == 4  # 128 training rows, batch 32
    [source] = recovery["sources"]
    assert source["file"] == str(demo_files[0]) and source["labels"] is True
    assert any("attention heads are kept" in note for note in record.notes)


def test_distill_keeps_evenly_spaced_layers_and_loads_in_plain_transformers(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    assert kept_layers(12, 6) == [0, 2, 4, 7, 9, 11]  # DistilBERT's choice
    assert kept_layers(2, 1) == [0] and kept_layers(6, 2) == [0, 5]
    result = compress(
        tiny_run, method="distill:1", output=tmp_path / "one", data=demo_files[1], settings=QUICK
    )
    assert _config(tiny_run)["num_hidden_layers"] == 2
    assert _config(result.path)["num_hidden_layers"] == 1
    child = trustune.load(result.path)
    assert len(child.model.bert.encoder.layer) == 1
    count = sum(p.numel() for p in child.model.parameters())
    assert count < sum(p.numel() for p in trustune.load(tiny_run).model.parameters())
    assert child.manifest.model.parameters == count
    np.testing.assert_allclose(_plain_logits(result.path, TEXTS), child.logits(TEXTS), atol=1e-5)
    record = child.manifest.compression
    assert record is not None and record.method == "distill:1"
    assert record.settings["kept_layers"] == [0] and record.settings["temperature"] == 2.0
    assert result.guard["metric"] == "accuracy" and result.size_bytes < result.parent_size_bytes


def test_regression_runs_prune_and_distill(
    regression_run: Path, pair_files: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = ["a cat plays guitar", "red car drives fast"], ["a cat plays", "blue car"]
    for method in ("prune", "distill:1"):  # plain `prune` is prune:0.3
        result = compress(
            regression_run, method=method, output=tmp_path / method.replace(":", "-"),
            data=pair_files[1], settings=QUICK,
        )  # fmt: skip
        assert result.guard["metric"] == "spearman"
        child = trustune.load(result.path)
        values = child.logits(first, second)
        assert values.shape == (2, 1) and np.isfinite(values).all()
        assert len(child.predict(first, second)) == 2
        assert child.manifest.target is not None and child.manifest.target.folded
    record = trustune.load(tmp_path / "prune").manifest.compression
    assert record is not None and record.settings["sparsity"] == 0.3
    assert record.settings["intermediate_size"] == {"before": 64, "after": 48}  # a multiple of 8
    assert record.settings["sparsity_achieved"] == 0.25


def test_a_dp_parent_is_refused_without_public_texts_and_recovers_on_them_only(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    # what a DP run records (the report reads every field)
    private = PrivacyRecord(
        dp=True, epsilon=8.0, target_epsilon=8.0, delta=1e-5, delta_rule="1/n", accountant="prv",
        noise_multiplier=1.1, max_grad_norm=1.0, sample_rate=0.25, logical_batch_size=32,
        steps=30, planned_steps=30,
    )  # fmt: skip
    dp_run = _copy_run(tiny_run, tmp_path / "dp", privacy=private)
    for method in ("prune:0.5", "distill:1"):
        with pytest.raises(PrivacyError, match=r"differential privacy \(ε=8\).*--unlabeled FILE"):
            compress(dp_run, method=method, output=tmp_path / "x", data=demo_files[1])
    assert not (tmp_path / "x").exists()
    public = _public_texts(tmp_path)
    result = compress(
        dp_run, method="distill:1", output=tmp_path / "student", data=demo_files[1],
        settings=dataclasses.replace(QUICK, unlabeled=str(public)),
    )  # fmt: skip
    manifest = trustune.load(result.path).manifest
    assert manifest.privacy is not None and manifest.privacy.dp and manifest.privacy.epsilon == 8.0
    assert manifest.compression is not None
    recovery = manifest.compression.settings["recovery"]
    [source] = recovery["sources"]  # the private training file was not read
    assert source["file"] == str(public) and source["labels"] is False
    assert recovery["labeled_rows"] == 0 and recovery["rows"] == source["rows"] > 0
    assert any("differentially private" in note for note in result.notes)


def test_a_gone_or_changed_training_file_needs_unlabeled_texts(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    train = read_manifest(tiny_run).data.train
    assert train is not None
    gone = dataclasses.replace(train, path=str(tmp_path / "gone.csv"))
    changed = dataclasses.replace(train, sha256="0" * 64)
    for name, part, why in (("gone", gone, "is gone"), ("changed", changed, "has changed")):
        data = dataclasses.replace(read_manifest(tiny_run).data, train=part)
        run = _copy_run(tiny_run, tmp_path / name, data=data)
        with pytest.raises(ConfigError, match=f"{why}.*; pass --unlabeled FILE"):
            compress(run, method="prune:0.5", output=tmp_path / "x", data=demo_files[1])
    table = tmp_path / "public.csv"
    with table.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([t] for t in _public_texts(tmp_path).read_text("utf-8").splitlines())
    result = compress(
        tmp_path / "gone", method="prune:0.5", output=tmp_path / "pruned", data=demo_files[1],
        settings=dataclasses.replace(QUICK, unlabeled=str(table)),
    )  # fmt: skip
    assert any("is gone: recovery learns the parent's outputs" in n for n in result.notes)
    record = trustune.load(result.path).manifest.compression
    assert record is not None
    assert [s["file"] for s in record.settings["recovery"]["sources"]] == [str(table)]


def test_rows_of_the_guard_are_never_trained_on(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"every row of the training file .* is also in --data"):
        compress(tiny_run, method="prune:0.5", output=tmp_path / "x", data=demo_files[0])
    lines = demo_files[0].read_text(encoding="utf-8").splitlines()
    test_lines = demo_files[1].read_text(encoding="utf-8").splitlines()
    mixed = tmp_path / "mixed.csv"  # the test rows and the first 20 training rows
    mixed.write_text("\n".join([*test_lines, *lines[1:21]]) + "\n", encoding="utf-8")
    with demo_files[0].open(encoding="utf-8", newline="") as f:
        train_texts = [row["text"] for row in csv.DictReader(f)]
    with demo_files[1].open(encoding="utf-8", newline="") as f:
        guard_texts = {row["text"] for row in csv.DictReader(f)} | set(train_texts[:20])
    overlap = sum(text in guard_texts for text in train_texts)
    result = compress(
        tiny_run, method="prune:0.5", output=tmp_path / "pruned", data=mixed, settings=QUICK
    )
    record = trustune.load(result.path).manifest.compression
    assert record is not None
    [source] = record.settings["recovery"]["sources"]
    assert source["left_out_as_guard_rows"] == overlap >= 20
    assert source["rows"] == len(train_texts) - overlap
    assert any("left out" in note for note in result.notes)


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("prune:1.5", "SPARSITY must be a number between 0 and 1"),
        ("prune:abc", "SPARSITY must be a number between 0 and 1"),
        ("prune:0", "SPARSITY must be a number between 0 and 1"),
        ("distill:0", "the student needs at least 1 layer, e.g. distill:3"),
        ("distill:abc", "LAYERS must be a whole number"),
        ("distill:2", "the teacher has 2 encoder layers and the student must have fewer"),
        ("distill", "needs distill:LAYERS"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    method: str, message: str, tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        compress(tiny_run, method=method, output=tmp_path / "x", data=demo_files[1])
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "x").exists()


def test_recovery_length() -> None:
    assert planned_epochs(2, 3, steps_per_epoch=1) == 2  # --recovery-epochs is taken as given
    assert planned_epochs(None, 1, steps_per_epoch=1000) == 1
    assert planned_epochs(None, 3, steps_per_epoch=1000) == 3
    assert planned_epochs(None, 1, steps_per_epoch=50) * 50 >= MIN_STEPS
    assert planned_epochs(None, 1, steps_per_epoch=1) == 10  # at most 10 passes when stretched


def test_cli_distill_with_the_recovery_flags(
    tiny_run: Path, demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    public = _public_texts(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "trustune.cli.main", "compress", str(tiny_run), "--method",
         "distill:1", "--data", str(demo_files[1]), "--output", str(tmp_path / "cli"),
         "--max-drop", "100", "--recovery-epochs", "1", "--unlabeled", str(public), "--json"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["method"] == "distill:1" and result["size_bytes"] < result["parent_size_bytes"]
    record = trustune.load(tmp_path / "cli").manifest.compression
    assert record is not None
    recovery = record.settings["recovery"]
    assert recovery["epochs"] == 1
    assert [s["labels"] for s in recovery["sources"]] == [True, False]  # training file, public
