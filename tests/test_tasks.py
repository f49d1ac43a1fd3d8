"""The task layer: the registry, text regression and sentence pairs end to end, old runs."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import trustune
from trustune.config import Loss, RunConfig, TaskType
from trustune.errors import ColumnError, ConfigError, DataError
from trustune.tasks import (
    TextClassification,
    TextRegression,
    detect_task,
    get_task,
    known_tasks,
    regression_metrics,
)

GOLDEN = Path(__file__).parent / "golden"


def test_registry_names_and_errors() -> None:
    assert known_tasks() == ["causal-lm", "text-classification", "text-regression"]
    assert get_task("text-regression") is TextRegression
    with pytest.raises(ConfigError, match=r"unknown task 'vision'; the known tasks are \["):
        get_task("vision")
    from trustune.tasks import register_task

    with pytest.raises(ConfigError, match="registered twice"):
        register_task(TextRegression)


def test_detection_takes_fractional_scores_for_regression() -> None:
    task, note = detect_task(TaskType.AUTO, ["0.5", "3.8", "4"])
    assert task is TextRegression
    assert note is not None and "--task text-classification" in note
    assert detect_task(TaskType.AUTO, [1, 2, 3, 5])[0] is TextClassification  # star ratings
    assert detect_task(TaskType.AUTO, ["pos", "neg"]) == (TextClassification, None)
    assert detect_task(TaskType.TEXT_REGRESSION, [1, 2])[0] is TextRegression


def test_regression_metrics_match_scipy_and_sklearn() -> None:
    from scipy import stats
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.uniform(0, 5, 200)
    p = y + rng.normal(0, 0.7, 200)
    result = regression_metrics(y, p)
    assert result["pearson"] == pytest.approx(stats.pearsonr(y, p).statistic)
    assert result["spearman"] == pytest.approx(stats.spearmanr(y, p).statistic)
    assert result["mse"] == pytest.approx(skm.mean_squared_error(y, p))
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert result["r2"] == pytest.approx(skm.r2_score(y, p))
    assert sum(r["rows"] for r in result["by_range"]) == 200
    assert sum(result["residuals"]["counts"]) == 200
    constant = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert constant["pearson"] is None and constant["spearman"] is None


def test_regression_run_end_to_end(regression_run: Path, pair_files: tuple[Path, Path]) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    manifest = json.loads((regression_run / "trustune.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "text-regression"
    assert manifest["text_pair_column"] == "sentence2"
    target = manifest["target"]
    assert target["folded"] is True and target["std"] > 0 and target["column"] == "score"
    assert manifest["training"]["selection_metric"] == "spearman"
    assert "labels" not in manifest
    model = trustune.load(regression_run)
    assert type(model).__name__ == "TextRegressor"
    first, second = ["cat dog man plays"], ["cat dog woman plays"]
    value = model.predict(first, second)[0].value
    # plain transformers gives the same score, in the targets' unit (the statistics are folded)
    plain = AutoModelForSequenceClassification.from_pretrained(regression_run / "model")
    tokenizer = AutoTokenizer.from_pretrained(regression_run / "model")
    assert plain.config.problem_type == "regression" and plain.config.num_labels == 1
    with torch.inference_mode():
        raw = plain.eval()(**tokenizer(first, second, return_tensors="pt")).logits
    assert float(raw[0, 0]) == pytest.approx(value, abs=1e-4)
    result = model.evaluate(pair_files[1], measure_latency=False)
    for key in ("pearson", "spearman", "mse", "mae", "r2"):
        assert key in result
    recorded = json.loads((regression_run / "metrics.json").read_text(encoding="utf-8"))
    assert recorded["validation"]["mse"] == pytest.approx(result["mse"], rel=1e-4)
    with pytest.raises(DataError, match="trained on text pairs"):
        model.predict(["only one text"])


def test_old_run_of_format_1_loads_and_predicts_the_same() -> None:
    golden = json.loads((GOLDEN / "run_v1_predictions.json").read_text(encoding="utf-8"))
    model = trustune.load(GOLDEN / "run_v1")
    assert type(model).__name__ == "TextClassifier"
    assert [p.to_dict() for p in model.predict(golden["texts"])] == golden["predictions"]


def test_string_targets_for_regression_name_the_rows(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("text,score\na,1.5\nb,high\nc,2.5\nd,low\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"2 target\(s\) of the column 'score' are not finite numbers \(rows 2, 4"
    ):
        trustune.finetune(
            data, model=str(tiny_model), output=tmp_path / "r", task="text-regression",
            progress=False,
        )  # fmt: skip


def test_scores_refused_as_classes(tmp_path: Path, tiny_model: Path) -> None:
    rows = "".join(f"text {i},{i * 0.137:.3f}\n" for i in range(60))
    data = tmp_path / "scores.csv"
    data.write_text("text,label\n" + rows, encoding="utf-8")
    with pytest.raises(DataError, match=r"scores, not classes\. Train a regression with --task"):
        trustune.finetune(
            data, model=str(tiny_model), output=tmp_path / "r", task="text-classification",
            progress=False,
        )  # fmt: skip


def test_pair_column_missing_in_validation(
    tmp_path: Path, tiny_model: Path, pair_files: Any
) -> None:
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence1\tscore\na dog\t1.5\n", encoding="utf-8")
    with pytest.raises(ColumnError, match=r"trained on text pairs|text-pair"):
        trustune.finetune(
            pair_files[0], validation=dev, model=str(tiny_model), output=tmp_path / "r",
            progress=False,
        )  # fmt: skip


def test_wrong_loss_for_the_task(tmp_path: Path, tiny_model: Path, demo_files: Any) -> None:
    with pytest.raises(ConfigError, match="--loss huber is not a classification loss"):
        trustune.finetune(
            demo_files[0], model=str(tiny_model), output=tmp_path / "r", loss="huber",
            progress=False,
        )  # fmt: skip


def test_dp_regression_step_equals_plain_step_without_noise_or_clipping() -> None:
    from trustune.encoding import Encoded
    from trustune.manifest import Manifest, TargetRecord
    from trustune.privacy.engine import PrivacyPlan, PrivateTraining, physical_batches

    target = TargetRecord(mean=2.0, std=1.5, column="score", loss=Loss.HUBER.value)
    task = TextRegression.from_manifest(Manifest(task="text-regression", target=target))
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    base = BertForSequenceClassification(
        BertConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, num_labels=1, problem_type="regression",
            attn_implementation="eager",
        )
    )  # fmt: skip
    ids = [[1, *range(10, 10 + n), 2] for n in (3, 7, 5, 9, 4, 6)]
    targets = [0.5, -1.0, 1.2, 0.0, 2.0, -0.3]
    encoded = Encoded(input_ids=ids, truncated=0)
    plan = PrivacyPlan(
        target_epsilon=8, delta=1e-5, delta_rule="given", accountant="rdp", clipping="ghost",
        max_grad_norm=1e6, noise_multiplier=0.0, sample_rate=0.5, logical_batch_size=6,
        physical_batch_size=4, steps_per_epoch=2, planned_steps=2, train_rows=12,
        freeze_embeddings=True,
    )  # fmt: skip
    private_model = copy.deepcopy(base).train()
    private = PrivateTraining(plan, criterion=task.loss)
    private.freeze(private_model)
    optimizer = torch.optim.SGD([p for p in private_model.parameters() if p.requires_grad], lr=1.0)
    private.attach(private_model, optimizer)
    private.step(
        physical_batches(
            list(range(6)), encoded=encoded, labels=targets, pad_id=0, physical_batch_size=4
        )
    )
    private.detach()
    plain_model = copy.deepcopy(base).train()
    plain_model.bert.embeddings.requires_grad_(False)
    plain_opt = torch.optim.SGD([p for p in plain_model.parameters() if p.requires_grad], lr=1.0)
    batch = encoded.batch(list(range(6)), pad_id=0, labels=targets)
    labels = batch.pop("labels")
    task.loss(plain_model(**batch).logits, labels).mean().backward()
    plain_opt.step()
    worst = max(
        float((a - b).abs().max())
        for a, b in zip(private_model.parameters(), plain_model.parameters(), strict=True)
    )
    assert worst < 1e-5


def test_regression_under_dp_takes_statistics_from_validation(
    tmp_path: Path, tiny_model: Path, pair_files: tuple[Path, Path]
) -> None:
    from trustune.tasks import prepare_training_data

    config = RunConfig.from_dict(
        {
            "data": {"train_file": str(pair_files[0]), "validation_file": str(pair_files[1])},
            "privacy": {"epsilon": 8.0},
        }
    )
    prepared = prepare_training_data(config)
    task = prepared.task
    assert isinstance(task, TextRegression)
    dev = [float(v) for v in prepared.data.validation.raw_labels]
    assert task.scale.mean == pytest.approx(np.mean(dev))
    assert task.manifest_section()["target"]["statistics_from"] == "validation"


def test_regression_run_serves_and_seals(regression_run: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from trustune.security import encrypt_run, generate_key
    from trustune.serve.app import create_app
    from trustune.store import Store

    model = trustune.load(regression_run)
    expected = model.predict(["cat dog man"], ["cat dog woman"])[0].value
    key = generate_key()
    sealed = encrypt_run(regression_run, key=key, output=tmp_path / "sealed")
    opened = trustune.load(sealed, key=key)
    assert type(opened).__name__ == "TextRegressor"
    assert opened.predict(["cat dog man"], ["cat dog woman"])[0].value == pytest.approx(expected)
    store = Store.open(f"sqlite:///{tmp_path / 'keys.db'}")
    secret = store.create_key(name="p", role="predict")[1]
    headers = {"Authorization": f"Bearer {secret}"}
    try:
        with TestClient(create_app(opened, store=store)) as client:
            info = client.get("/v1/model", headers=headers).json()
            assert info["task"] == "text-regression" and info["pairs"] is True
            body = {"texts": ["cat dog man"], "text_pairs": ["cat dog woman"]}
            answer = client.post("/v1/predict", json=body, headers=headers)
            assert answer.status_code == 200
            assert answer.json()["predictions"][0]["value"] == pytest.approx(expected, abs=1e-5)
            missing = client.post("/v1/predict", json={"texts": ["x"]}, headers=headers)
            assert missing.status_code == 422
            assert "text_pairs" in missing.text
    finally:
        store.close()


def test_docs_tasks_commands_run_as_written(
    tmp_path: Path, tiny_model: Path, pair_files: tuple[Path, Path]
) -> None:
    """docs/tasks.md's STS commands through the real CLI (tiny model, small files)."""
    from test_docs_commands import Tour

    shutil.copy(pair_files[0], tmp_path / "sts-train.tsv")
    shutil.copy(pair_files[1], tmp_path / "sts-dev.tsv")
    tour = Tour(tmp_path)
    tiny = ["--model", str(tiny_model), "--epochs", "1", "--batch-size", "16", "--lr", "1e-3"]
    out = tour.run("trustune train --data sts-train.tsv", *tiny, "--quiet", "--no-speed")
    manifest = json.loads((tmp_path / "runs/sts/trustune.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "text-regression"
    assert "spearman" in out
    assert "spearman" in tour.run("trustune evaluate runs/sts --data sts-dev.tsv", "--no-speed")
    assert tour.run("trustune predict runs/sts --text").strip()
