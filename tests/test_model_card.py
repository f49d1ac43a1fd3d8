"""The model card model/README.md: Hugging Face format, rewritten with the records, sealed and
signed with the model, and no obstacle to loading the folder with plain transformers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import trustune
from trustune.manifest import Manifest, PrivacyRecord, read_manifest
from trustune.records import save_records
from trustune.report.model_card import render_model_card, run_name, write_model_card
from trustune.run import record_evaluation

TEXTS = ["I was charged twice this month", "the app crashes on start", "where is my parcel"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split(card: str) -> tuple[dict[str, Any], str]:
    """The card's YAML front matter and its Markdown body."""
    assert card.startswith("---\n")
    front, body = card[4:].split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert isinstance(meta, dict)
    return meta, body


@pytest.fixture
def run(tmp_path: Path, tiny_run: Path) -> Path:
    copy = tmp_path / "support"
    shutil.copytree(tiny_run, copy)
    return copy


def test_a_finished_run_has_a_card_in_the_hugging_face_format(run: Path) -> None:
    card = run / "model" / "README.md"
    meta, body = _split(card.read_text(encoding="utf-8"))
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert "trustune" in meta["tags"] and "differential-privacy" not in meta["tags"]
    assert "base_model" not in meta  # the tiny model is a local folder, not a hub id
    (entry,) = meta["model-index"][0]["results"]
    scores = {score["type"]: score["value"] for score in entry["metrics"]}
    assert scores["accuracy"] == round(metrics["validation"]["accuracy"], 4)
    for heading in ("Intended use and limits", "Training data", "Hyperparameters", "Metrics",
                    "Privacy", "Files"):  # fmt: skip
        assert f"\n## {heading}\n" in body, heading
    for label in manifest["labels"]:
        assert f"`{label}`" in body
    assert manifest["data"]["train"]["sha256"] in body  # the training data's fingerprint
    assert "| `train.lr` | `0.001` |" in body
    assert "Trained without differential privacy" in body
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert f"| `{name}` | `{_sha(run / 'model' / name)}` |" in body
    assert "README.md` |" not in body  # a card cannot list its own hash
    assert manifest["files"]["model/README.md"] == _sha(card)  # but the manifest does
    assert str(Path(manifest["data"]["train"]["path"]).parent) not in body  # file names only


def test_the_hub_reads_the_card_metadata(run: Path) -> None:
    hub = pytest.importorskip("huggingface_hub")
    card = hub.ModelCard((run / "model" / "README.md").read_text(encoding="utf-8"))
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-classification"
    assert {result.metric_type for result in card.data.eval_results} >= {"accuracy", "f1"}


def test_plain_transformers_loads_the_model_folder(run: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = run / "model"
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    predictions = pipeline("text-classification", model=model, tokenizer=tokenizer)(TEXTS)
    labels = json.loads((run / "trustune.json").read_text(encoding="utf-8"))["labels"]
    assert len(predictions) == len(TEXTS)
    assert all(prediction["label"] in labels for prediction in predictions)


def test_an_evaluation_rewrites_the_card_and_its_hash(
    run: Path, demo_files: tuple[Path, Path]
) -> None:
    card = run / "model" / "README.md"
    before = card.read_text(encoding="utf-8")
    result = trustune.load(run).evaluate(demo_files[1], measure_latency=False)
    record_evaluation(run, "holdout", result)
    meta, body = _split(card.read_text(encoding="utf-8"))
    names = [entry["dataset"]["name"] for entry in meta["model-index"][0]["results"]]
    assert names[0].startswith("validation") and names[1].startswith("holdout")
    assert f"| holdout | `{demo_files[1].name}` |" in body
    assert card.read_text(encoding="utf-8") != before
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert manifest["files"]["model/README.md"] == _sha(card)
    assert trustune.load(run).predict(TEXTS)  # the run still loads


def test_privacy_guarantee_and_audit_are_on_the_card() -> None:
    manifest = Manifest.from_dict({
        "format": "trustune.run", "format_version": 2, "labels": ["no", "yes"],
        "model": {"source": "minilm", "resolved": "/site/minilm", "architecture": "BertModel"},
        "privacy": {
            "dp": True, "epsilon": 2.9871, "delta": 1.2e-5, "accountant": "prv",
            "noise_multiplier": 0.9312, "max_grad_norm": 1.0, "steps": 300,
            "redaction": {"train": {"counts": {"EMAIL": 3, "PHONE": 1}}},
            "audit": {
                "auc": 0.5123, "auc_ci": [0.49, 0.534], "strongest_attack": "loss",
                "tpr_at_1pct_fpr": 0.011, "tpr_at_0.1pct_fpr": 0.001,
                "members": {"used": 500}, "non_members": {"used": 500},
            },
        },
    })  # fmt: skip
    meta, body = _split(render_model_card(manifest, {}, run_name="private"))
    body = " ".join(body.split())  # prose is wrapped: compare it as one line
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "differential-privacy" in meta["tags"]
    assert "model-index" not in meta  # nothing was measured
    assert "**ε = 2.987, δ = 1.2e-05**" in body
    assert "train 4 replaced" in body
    assert "reaches ROC-AUC **0.512** (95% interval 0.490 to 0.534" in body
    assert "500 training rows" in body


def test_a_private_run_without_an_audit_has_a_card() -> None:
    manifest = Manifest(
        labels=("no", "yes"),
        privacy=PrivacyRecord(dp=True, epsilon=7.9, delta=1e-5, accountant="prv", steps=30),
    )
    _, body = _split(render_model_card(manifest, {}, run_name="private"))
    body = " ".join(body.split())
    assert "**ε = 7.900, δ = 1e-05**" in body
    assert "No membership-inference audit was recorded" in body


def test_an_audit_saved_into_the_run_reaches_the_card(run: Path) -> None:
    manifest = read_manifest(run)
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    privacy = PrivacyRecord(
        dp=False,
        audit={"auc": 0.73, "auc_ci": [0.7, 0.76], "strongest_attack": "reference",
               "tpr_at_1pct_fpr": 0.2, "tpr_at_0.1pct_fpr": 0.05,
               "members": {"used": 80}, "non_members": {"used": 80}},
    )  # fmt: skip
    # as `trustune audit privacy` records it
    save_records(run, dataclasses.replace(manifest, privacy=privacy), metrics)
    body = " ".join((run / "model" / "README.md").read_text(encoding="utf-8").split())
    assert "Trained without differential privacy" in body
    assert "the strongest attack (reference)" in body and "**0.730**" in body


def test_text_from_the_data_cannot_break_the_markdown() -> None:
    manifest = Manifest.from_dict({
        "format": "trustune.run", "format_version": 2,
        "labels": ["a|b", "`tick`", "<script>x</script>"],
        "data": {"train": {"path": "/home/me/secret/t.csv", "rows": 3,
                           "class_counts": {"a|b": 1, "`tick`": 1, "<script>x</script>": 1}}},
        "text_column": "body\nmore",
    })  # fmt: skip
    _, body = _split(render_model_card(manifest, {}, run_name="<b>run</b> *x*"))
    assert body.lstrip().startswith("# \\<b\\>run\\</b\\> \\*x\\*\n")
    assert "`a\\|b`" in body and "`'tick'`" in body
    assert "/home/me" not in body and "`t.csv`" in body
    assert "`body more`" in body
    for line in body.splitlines():
        if line.startswith("| train |"):
            assert line.replace("\\|", "").count("|") == 6  # five cells, none split


def test_an_encrypted_run_keeps_its_card_sealed(
    run: Path, tmp_path: Path, demo_files: tuple[Path, Path]
) -> None:
    from trustune.security import decrypt_run, encrypt_run, generate_key

    key = generate_key()
    sealed = encrypt_run(run, key=key, output=tmp_path / "sealed")
    assert (sealed / "model" / "README.md.enc").is_file()
    result = trustune.load(sealed, key=key).evaluate(demo_files[1], measure_latency=False)
    record_evaluation(sealed, "holdout", result)
    assert not (sealed / "model" / "README.md").exists()  # no plaintext payload appears
    restored = decrypt_run(sealed, key=key, output=tmp_path / "restored")
    assert (restored / "model" / "README.md").read_bytes() == (
        run / "model" / "README.md"
    ).read_bytes()
    assert trustune.load(restored).predict(TEXTS)


def test_a_signed_run_verifies_with_its_card(run: Path) -> None:
    from trustune.security import generate_signing_key, sign_run, verify_run

    signing_key = generate_signing_key()
    sign_run(run, signing_key)
    verification = verify_run(run, signing_key.public_key())
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    assert "model/README.md" in manifest["files"] and verification.files == len(manifest["files"])
    (run / "model" / "README.md").write_text("changed", encoding="utf-8")
    from trustune.errors import IntegrityError

    with pytest.raises(IntegrityError, match=r"model/README\.md"):
        verify_run(run, signing_key.public_key())


def test_no_card_without_a_plaintext_model(tmp_path: Path) -> None:
    assert write_model_card(tmp_path, Manifest(), {}) is None
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    assert write_model_card(tmp_path, Manifest(encryption={}), {}) is None
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json"]


def test_a_failed_write_keeps_the_previous_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "README.md").write_text("previous", encoding="utf-8")

    def broken_replace(source: Any, target: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_model_card(tmp_path, Manifest(), {})
    assert (folder / "README.md").read_text(encoding="utf-8") == "previous"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json"]


def test_the_run_name_survives_a_staging_folder(tmp_path: Path) -> None:
    assert run_name(tmp_path / ".support.tmp-4242-ab_c1") == "support"
    assert run_name(tmp_path / "support") == "support"
