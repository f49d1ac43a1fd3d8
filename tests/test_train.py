from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import trustune
from trustune.errors import ArtifactError, CheckpointError, ConfigError, TrainingInterrupted
from trustune.manifest import FORMAT_VERSION
from trustune.progress import Progress


def _train(data: Path, model: Path, output: Path, **options: Any) -> trustune.Run:
    options = {"epochs": 2, "batch_size": 16, "lr": 1e-3, "measure_latency": False, **options}
    return trustune.finetune(data, model=str(model), output=output, **options)


def test_run_artifact_layout(tiny_run: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    assert {p.name for p in tiny_run.iterdir()} >= {
        "model",
        "trustune.json",
        "metrics.json",
        "report.html",
    }
    assert not (tiny_run / "checkpoints").exists()  # removed once the run is written
    manifest = json.loads((tiny_run / "trustune.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "trustune.run" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["labels"] == ["account", "billing", "shipping", "technical"]
    assert manifest["data"]["train"]["rows"] + manifest["data"]["validation"]["rows"] == 128
    assert manifest["data"]["validation"]["split_from_train"] is True
    assert len(manifest["data"]["train"]["sha256"]) == 64
    assert manifest["training"]["steps"] == manifest["training"]["history"][-1]["step"]
    assert manifest["training"]["selection_data"] == "validation"
    assert "torch" in manifest["environment"]["packages"]
    assert set(manifest["files"]) >= {"model/model.safetensors", "model/config.json"}
    plain = AutoModelForSequenceClassification.from_pretrained(tiny_run / "model")
    assert plain.config.id2label == {0: "account", 1: "billing", 2: "shipping", 3: "technical"}
    metrics = json.loads((tiny_run / "metrics.json").read_text(encoding="utf-8"))
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    assert "Training" in (tiny_run / "report.html").read_text(encoding="utf-8")


def test_load_and_predict(tiny_run: Path) -> None:
    model = trustune.load(tiny_run)
    predictions = model.predict(["my card was charged twice", "订单还没有到"])
    assert len(predictions) == 2
    for p in predictions:
        assert p.label in model.labels
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    streamed = list(model.predict_stream(iter(["a", "b", "c"]), batch_size=2))
    assert [p.label for p in streamed] == [p.label for p in model.predict(["a", "b", "c"])]


def test_evaluate_matches_sklearn(tiny_run: Path, demo_files: tuple[Path, Path]) -> None:
    import pandas as pd
    from sklearn.metrics import accuracy_score

    model = trustune.load(tiny_run)
    result = model.evaluate(demo_files[1], measure_latency=False)
    frame = pd.read_csv(demo_files[1])
    predicted = [p.label for p in model.predict(frame["text"].tolist())]
    assert result["accuracy"] == pytest.approx(accuracy_score(frame["label"], predicted))
    assert sum(map(sum, result["confusion_matrix"]["matrix"])) == len(frame)
    assert 0.0 <= result["ece"] <= 1.0
    assert result["roc_auc"] is not None


def test_interrupted_run_resumes_to_identical_weights(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    class StopAt(Progress):
        def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
            self.steps = getattr(self, "steps", 0) + amount
            if self.steps == 5:
                raise KeyboardInterrupt

    straight = _train(demo_files[0], tiny_model, tmp_path / "straight", early_stopping_patience=0)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        _train(
            demo_files[0],
            tiny_model,
            tmp_path / "resumed",
            early_stopping_patience=0,
            progress=StopAt(),
        )
    assert not (tmp_path / "resumed" / "model").exists()
    with pytest.raises(
        ConfigError, match=r"these differ from it: \['train.early_stopping_patience'\]"
    ):
        _train(demo_files[0], tiny_model, tmp_path / "resumed", resume=True)
    resumed = _train(
        demo_files[0], tiny_model, tmp_path / "resumed", resume=True, early_stopping_patience=0
    )
    a = load_file(str(straight.path / "model" / "model.safetensors"))
    b = load_file(str(resumed.path / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def steps(run):
        return [(h["step"], round(h["val_loss"], 6)) for h in run.manifest.training.history]

    assert steps(straight) == steps(resumed)


def test_existing_output_refused_and_overwrite_keeps_old_on_failure(
    tmp_path: Path, tiny_run: Path, tiny_model: Path, write_csv: Any
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    with pytest.raises(ArtifactError, match="already exists; pass --overwrite"):
        _train(tiny_run.parent / "none.csv", tiny_model, copy)
    before = (copy / "model" / "model.safetensors").read_bytes()
    bad = write_csv("bad.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(trustune.TrustuneError):
        _train(bad, tiny_model, copy, overwrite=True)
    assert (copy / "model" / "model.safetensors").read_bytes() == before
    trustune.load(copy)


class _StopAfterFirstStep(Progress):
    """Ctrl-C after the first optimizer step: the run is interrupted, its checkpoint kept."""

    def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
        if task == "train":
            raise KeyboardInterrupt


def test_resume_refuses_changed_data(
    tmp_path: Path, tiny_model: Path, tiny_run: Path, write_csv: Any
) -> None:
    rows = "".join(f"text number {i},{'a' if i % 2 else 'b'}\n" for i in range(40))
    data = write_csv("d.csv", "text,label\n" + rows)
    with pytest.raises(TrainingInterrupted, match="checkpoint saved"):
        _train(data, tiny_model, tmp_path / "r", epochs=1, progress=_StopAfterFirstStep())
    assert list((tmp_path / "r" / "checkpoints").iterdir())
    data.write_text("text,label\n" + rows + "one more,a\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match="the training data changed since checkpoint"):
        _train(data, tiny_model, tmp_path / "r", resume=True, epochs=1)
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        _train(data, tiny_model, tmp_path / "empty", resume=True)
    finished = f"{tiny_run} is a finished run (its checkpoints were removed when it was written)"
    with pytest.raises(CheckpointError, match=re.escape(finished)):
        _train(data, tiny_model, tiny_run, resume=True)


def test_early_stopping_and_best_checkpoint(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from trustune.train import checkpoint_policy

    best_weights: dict[str, torch.Tensor] = {}  # checkpoints/best goes once the run is written

    def save_best(model: torch.nn.Module, path: Path) -> None:
        real_save(model, path)
        best_weights.update(load_file(str(path)))

    real_save = checkpoint_policy.save_weights_atomic
    monkeypatch.setattr(checkpoint_policy, "save_weights_atomic", save_best)
    run = _train(demo_files[0], tiny_model, tmp_path / "es", epochs=6, lr=1e-9, early_stopping_patience=1,
                 selection_metric="loss", evaluate_every=2)  # fmt: skip
    training = run.manifest.training
    assert training.stopped_early or training.epochs_completed == 6
    best = min(training.history, key=lambda h: h["val_loss"])
    assert training.best_step == best["step"]
    final = load_file(str(run.path / "model" / "model.safetensors"))
    for key in final:
        assert torch.equal(final[key], best_weights[key])
    assert not (run.path / "checkpoints").exists()
