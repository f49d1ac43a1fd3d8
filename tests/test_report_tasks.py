"""Report sections by task through one registry: a regression run's report and model card, the
Privacy section kept by `trustune report`, and the records module below the stages."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import trustune
from trustune.errors import ConfigError
from trustune.manifest import Manifest, PrivacyRecord
from trustune.report import render_report
from trustune.report.model_card import render_model_card
from trustune.report.sections import (
    SectionInput,
    Slot,
    build_sections,
    forget_run_sections,
    known_sections,
    register_section,
    sections_for,
)
from trustune.tasks import regression_metrics

REGRESSION_SECTIONS = ("Predicted vs true", "Residuals", "Error by target range")
CLASSIFICATION_SECTIONS = ("Confusion matrix", "ROC and precision-recall curves", "Calibration")


def _regression_result(rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    y = rng.uniform(0, 5, rows)
    result = regression_metrics(y, y + rng.normal(0, 0.6, rows))
    result["loss"] = 0.4
    result["data"] = {"path": "data/dev.tsv", "sha256": "5d" * 32, "rows": rows}
    return result


def regression_run() -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and metrics.json of a sentence-pair regression run."""
    stats = {"mean": 2.5, "std": 1.2, "min": 0.0, "max": 5.0}
    split = {"path": "data/train.tsv", "sha256": "a1" * 32, "rows": 400, "target_stats": stats}
    history = [
        {"step": 10 * i, "train_loss": 1 / i, "val_loss": 1.2 / i, "val_spearman": 0.2 * i,
         "val_pearson": 0.21 * i}
        for i in (1, 2, 3)
    ]  # fmt: skip
    manifest = {
        "format": "trustune.run", "format_version": 2, "task": "text-regression",
        "trustune_version": "0.1.0",
        "config": {"train": {"epochs": 3, "lr": 5e-5}, "data": {"max_length": 128}},
        "target": {"column": "similarity", "statistics_from": "train", "mean": 2.5, "std": 1.2,
                   "min": 0.0, "max": 5.0, "standardised": True, "folded": True, "loss": "mse"},
        "text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "similarity",
        "data": {"train": split, "validation": {**split, "rows": 120, "path": "data/dev.tsv"}},
        "model": {"source": "minilm", "architecture": "BertForSequenceClassification"},
        "training": {"steps": 30, "selection_metric": "spearman", "best_metric": 0.6,
                     "history": history},
    }  # fmt: skip
    metrics = {
        "validation": _regression_result(120, 0),
        "evaluations": {"sts-test": _regression_result(900, 1)},
    }
    return manifest, metrics


def _split(card: str) -> tuple[dict[str, Any], str]:
    front, body = card[4:].split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert isinstance(meta, dict)
    return meta, " ".join(body.split())


@pytest.fixture(scope="module")
def regression_html() -> str:
    manifest, metrics = regression_run()
    return render_report(Manifest.from_dict(manifest), metrics)


def test_a_regression_report_shows_its_figures_and_no_confusion_matrix(
    regression_html: str,
) -> None:
    html = regression_html
    for title in (*REGRESSION_SECTIONS, "Metrics", "Target", "Target distribution", "Speed"):
        assert html.count(f">{title}</h3>") == (2 if title not in ("Target", "Target distribution")
                                               else 1), title  # fmt: skip
    for absent in (*CLASSIFICATION_SECTIONS, "Per class", "Class counts", "Accuracy", "Labels ("):
        assert absent not in html, absent
    # the headline figures: cards and the metrics table
    validation = regression_run()[1]["validation"]
    for name in ("Spearman", "Pearson", "MSE", "MAE", "R²"):
        assert f"<td>{name}</td>" in html, name
    assert f"<dt>Spearman</dt><dd>{validation['spearman']:.3f}</dd>" in html
    assert f'<td>R²</td><td class="num">{validation["r2"]:.3f}</td>' in html
    # scatter and residual histogram of each result, the training curves: embedded PNGs
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 1 + 2 * 2
    assert "(500 of 900 rows)" in html  # the evaluation's scatter shows the points kept
    assert "text pair: sentence2" in html
    results = html[
        html.index('<section id="validation">') : html.index('<section id="environment">')
    ]
    assert "not available" not in results.replace("Speed: not available", "")


def test_the_error_by_range_table_has_a_row_per_range(regression_html: str) -> None:
    section = regression_html[regression_html.index(">Error by target range</h3>") :]
    table = section[: section.index("</table>")]
    cells = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td>", table)
    by_range = regression_run()[1]["validation"]["by_range"]
    assert len(cells) == len(by_range) == 5
    assert sum(int(rows) for _, rows in cells) == 120
    low, high = by_range[0]["range"]
    assert cells[0][0] == f"{low:.4g} to {high:.4g}"


def test_malformed_regression_results_say_not_available() -> None:
    manifest, metrics = regression_run()
    metrics["validation"]["points"] = {"true": [1.0, 2.0], "predicted": [1.0]}
    metrics["validation"]["residuals"] = {"counts": [1, 2], "edges": "x"}
    metrics["validation"]["by_range"] = "oops"
    del manifest["target"]
    html = render_report(Manifest.from_dict(manifest), metrics)
    for what in ("Predicted against true score", "Residuals (predicted − true score)",
                 "Error by target range", "Target"):  # fmt: skip
        assert f"{what}: not available" in html, what


def test_a_regression_model_card_names_the_task_and_its_figures() -> None:
    manifest, metrics = regression_run()
    meta, body = _split(render_model_card(Manifest.from_dict(manifest), metrics, run_name="sts"))
    assert meta["pipeline_tag"] == "text-classification"  # the pipeline that runs the folder
    assert "text-regression" in meta["tags"] and "text-classification" not in meta["tags"]
    entry = meta["model-index"][0]["results"][0]
    assert entry["task"] == {"type": "text-classification", "name": "Text regression"}
    scores = {score["type"]: score["value"] for score in entry["metrics"]}
    assert scores["spearmanr"] == round(metrics["validation"]["spearman"], 4)
    assert {"pearsonr", "mse", "mae", "r_squared"} <= set(scores) and "accuracy" not in scores
    assert "task `text-regression`" in body
    assert "the score `similarity` of a pair of texts (columns `sentence1` and `sentence2`)" in body
    assert "| data | file | rows | Spearman | Pearson | MSE | MAE | R² |" in body
    assert f"| validation | `dev.tsv` | 120 | {metrics['validation']['spearman']:.3f} |" in body
    assert "train mean 2.5, sd 1.2, 0 to 5" in body  # the targets' unit
    assert '"text_pair": ' in body and 'function_to_apply="none"' in body
    assert "labels" not in body.lower().replace("label_0", "")


def test_a_classification_report_has_no_regression_sections() -> None:
    from test_report import make_run

    manifest, metrics = make_run(["no", "yes"])
    html = render_report(Manifest.from_dict(manifest), metrics)
    for absent in (*REGRESSION_SECTIONS, "Target distribution", "Spearman"):
        assert absent not in html, absent
    for title in CLASSIFICATION_SECTIONS:
        assert f">{title}</h3>" in html


def test_the_registry_chooses_sections_by_task() -> None:
    names = {slot: [s.name for s in sections_for("text-regression", slot)] for slot in Slot}
    assert names[Slot.RESULT] == [
        "regression-metrics", "predicted-vs-true", "residuals", "error-by-range", "speed"
    ]  # fmt: skip
    assert names[Slot.RUN] == ["compression", "efficiency", "tuning", "explanations", "privacy"]
    # a task this release does not know keeps the sections of every task, nothing else
    unknown = [s.name for s in sections_for("text-ranking", Slot.RESULT)]
    assert unknown == ["speed"]
    assert {"privacy", "explanations", "confusion-matrix", "residuals"} <= set(known_sections())


def test_a_section_name_taken_twice_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"'privacy' is registered twice; the known sections are \["
    ):
        register_section("privacy", title="Privacy", order=1, builder=lambda given: None)


def test_a_builder_returning_none_leaves_its_section_out() -> None:
    given = SectionInput(manifest=Manifest(task="text-regression"), metrics={})
    assert [title for title, _ in build_sections(Slot.RUN, given)] == []  # no privacy record
    private = Manifest(task="text-regression", privacy=PrivacyRecord(dp=False))
    given = SectionInput(manifest=private, metrics={})
    ((title, body),) = build_sections(Slot.RUN, given)
    assert title == "Privacy" and "Trained without differential privacy" in body


def test_forgetting_a_replaced_model_removes_the_section_files(tmp_path: Path) -> None:
    from trustune.privacy import audit, report

    assert report.AUDIT_FILE == audit.AUDIT_FILE  # the file the audit writes is the one read
    for name in ("explanations.json", report.AUDIT_FILE, "trustune.json"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    forget_run_sections(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["trustune.json"]


def test_the_records_module_imports_no_stage() -> None:
    probe = (
        "import sys, json, trustune.records, trustune.report.sections as s; s.load_entries(); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('trustune.'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "trustune.privacy.report" in loaded  # privacy's section is registered ...
    for stage in ("trustune.run", "trustune.train", "trustune.privacy.audit", "trustune.explain"):
        assert stage not in loaded, stage  # ... without importing a stage


def _trustune(*args: str | Path) -> subprocess.CompletedProcess[str]:
    from test_cli import trustune as run_cli

    return run_cli(*args)


def test_trustune_report_keeps_the_privacy_section_of_an_audit(
    tmp_path: Path, tiny_run: Path, demo_files: tuple[Path, Path]
) -> None:
    from trustune.privacy.audit import audit_privacy

    run = tmp_path / "audited"
    shutil.copytree(tiny_run, run)
    audit = audit_privacy(
        trustune.load(run), members=demo_files[0], non_members=demo_files[1], limit=40, bootstrap=20,
        neighbour_count=2,
    )  # fmt: skip
    written = (run / "report.html").read_text(encoding="utf-8")
    assert ">Privacy</h2>" in written and "Membership-inference audit" in written
    (run / "report.html").unlink()
    result = _trustune("report", run)
    assert result.returncode == 0, result.stderr
    rebuilt = (run / "report.html").read_text(encoding="utf-8")
    assert ">Privacy</h2>" in rebuilt and "Membership-inference audit" in rebuilt
    assert f"{audit['auc']:.3f} [" in rebuilt
    for title in ("Summary", "Data", "Training", "Validation", "Environment", "Files"):
        assert f">{title}</h2>" in rebuilt, title
    assert 'href="#privacy"' in rebuilt


@pytest.fixture(scope="module")
def trained_regression(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A tiny regression run on single texts whose score is the number of a word in them."""
    folder = tmp_path_factory.mktemp("scores")
    rng = np.random.default_rng(5)
    lines = ["text,score"]
    for _ in range(120):
        count = int(rng.integers(0, 5))
        words = ["good"] * count + ["plain"] * (5 - count)
        lines.append(f"{' '.join(rng.permutation(words))},{count + rng.uniform(-0.3, 0.3):.3f}")
    data = folder / "scores.csv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = folder / "run"
    trustune.finetune(
        data, model=str(tiny_model), output=output, epochs=1, batch_size=16, lr=1e-3,
        measure_latency=False, progress=False,
    )  # fmt: skip
    return output


def test_a_trained_regression_run_has_its_report_and_card(trained_regression: Path) -> None:
    run = trained_regression
    html = (run / "report.html").read_text(encoding="utf-8")
    for title in REGRESSION_SECTIONS:
        assert f">{title}</h3>" in html, title
    assert "Confusion matrix" not in html
    meta, body = _split((run / "model" / "README.md").read_text(encoding="utf-8"))
    assert "text-regression" in meta["tags"]
    assert "task `text-regression`" in body and "Spearman" in body
    assert "the score `score` of a text (column `text`)" in body
    (run / "report.html").unlink()
    result = _trustune("report", run)
    assert result.returncode == 0, result.stderr
    assert (run / "report.html").read_text(encoding="utf-8").count(">Predicted vs true</h3>") == 1
