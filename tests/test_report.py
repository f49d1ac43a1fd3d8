"""The HTML report: atomic write, every section, offline, formatted numbers, escaping."""

from __future__ import annotations

import base64
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from markupsafe import Markup

import trustune.report
from trustune.errors import ArtifactError
from trustune.manifest import Manifest
from trustune.report import fonts, plots, render_report, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHA_TRAIN = "a3f1" * 16
SHA_WEIGHTS = "9c0d" * 16


def eval_result(labels: list[str], accuracy: float, rows: int, *, speed: bool = True) -> dict:
    """A realistic EvalResult for the given labels."""
    size = len(labels)
    per_row = rows // size
    matrix = [[per_row - 2 * (size - 1) if i == j else 2 for j in range(size)] for i in range(size)]
    positives = labels[1:] if size == 2 else labels  # binary: one curve, the positive class
    result: dict[str, Any] = {
        "data": {"path": "data/test.csv", "sha256": "77ee" * 16, "rows": rows},
        "accuracy": accuracy,
        "precision_macro": 0.9051,
        "recall_macro": 0.9012,
        "f1_macro": 0.8973,
        "precision_weighted": 0.9102,
        "recall_weighted": accuracy,
        "f1_weighted": 0.9088,
        "per_class": {
            label: {"precision": 0.9, "recall": 0.88, "f1": 0.89, "support": per_row}
            for label in labels
        },
        "confusion_matrix": {"labels": labels, "matrix": matrix},
        "roc_auc": 0.9734,
        "pr_auc": 0.9611,
        "curves": {
            "roc": {
                p: {"fpr": [0.0, 0.05, 0.2, 1.0], "tpr": [0.0, 0.7, 0.95, 1.0]} for p in positives
            },
            "pr": {
                p: {"precision": [1.0, 0.95, 0.8, 0.5], "recall": [0.0, 0.6, 0.9, 1.0]}
                for p in positives
            },
        },
        "ece": 0.0312,
        "reliability": {
            "bins": [
                {
                    "lower": i / 10,
                    "upper": (i + 1) / 10,
                    "confidence": i / 10 + 0.05,
                    "accuracy": max(0.0, i / 10 + 0.02),
                    "count": 0 if i < 3 else 10 * i,
                }
                for i in range(10)
            ]
        },
    }
    if speed:
        result["speed"] = {
            "device": "cpu",
            "threads": 2,
            "latency_ms_p50": 8.1,
            "latency_ms_p95": 9.9,
            "batch_size": 32,
            "throughput_per_s": 420.0,
        }
    return result


def make_run(labels: list[str]) -> tuple[dict, dict]:
    """A manifest and metrics.json as a finished training run writes them."""
    counts = {label: 180 + 7 * i for i, label in enumerate(labels)}
    split = {
        "path": "data/train.csv",
        "sha256": SHA_TRAIN,
        "rows": sum(counts.values()),
        "skipped_rows": 3,
        "class_counts": counts,
        "text_chars": {"mean": 61.2, "p50": 58, "p95": 101, "max": 140},
        "truncated": 1,
    }
    history = [
        {
            "epoch": epoch,
            "step": 40 * epoch,
            "train_loss": 0.9 / epoch,
            "val_loss": 0.5 / epoch + 0.1,
            "val_accuracy": 0.8 + 0.04 * epoch,
            "val_f1_macro": 0.79 + 0.04 * epoch,
            "lr": 4.1e-5,
            "samples_per_s": 139.0,
        }
        for epoch in (1, 2, 3)
    ]
    manifest = {
        "format": "trustune.run",
        "format_version": 1,
        "task": "text-classification",
        "created": "2026-11-28T10:00:00+00:00",
        "trustune_version": "0.1.0",
        "config": {
            "data": {"train_file": "data/train.csv", "max_length": 128},
            "model": {"name": "minilm", "attention": "auto"},
            "train": {"epochs": 3, "batch_size": 32, "lr": 5e-5, "head_lr": None, "seed": 42},
            "privacy": {"epsilon": None, "redact_pii": False},
        },
        "labels": labels,
        "text_column": "text",
        "label_column": "label",
        "data": {
            "train": split,
            "validation": {**split, "rows": 60, "split_from_train": True},
        },
        "model": {
            "source": "minilm",
            "resolved": "/models/all-MiniLM-L6-v2",
            "architecture": "BertForSequenceClassification",
            "parameters": 22713216,
        },
        "training": {
            "precision": "fp32",
            "device": "cpu",
            "world_size": 1,
            "steps": 120,
            "epochs_completed": 3,
            "best_step": 80,
            "best_metric": 0.93,
            "selection_metric": "accuracy",
            "stopped_early": False,
            "wall_time_s": 41.2,
            "train_samples_per_s": 140.1,
            "history": history,
        },
        "environment": {
            "python": "3.11.7",
            "platform": "Linux-6.1-x86_64",
            "packages": {"torch": "2.13.0", "transformers": "4.46.0"},
        },
        "files": {"model/model.safetensors": SHA_WEIGHTS, "model/config.json": "12ab" * 16},
    }
    metrics = {
        "validation": eval_result(labels, 0.91666, 60),
        "evaluations": {"holdout": eval_result(labels, 0.8875, 240, speed=False)},
    }
    return manifest, metrics


@pytest.fixture(params=[["negative", "positive"], ["account", "billing", "shipping"]])
def run(request: pytest.FixtureRequest) -> tuple[dict, dict]:
    return make_run(list(request.param))


@pytest.fixture(
    scope="module", params=[["negative", "positive"], ["account", "billing", "shipping"]]
)
def html(request: pytest.FixtureRequest) -> str:
    """One binary and one 3-class report, rendered once (plots take about a second)."""
    manifest, metrics = make_run(list(request.param))
    return render_report(Manifest.from_dict(manifest), metrics)


def test_exported_surface() -> None:
    assert trustune.report.__all__ == ["render_report", "write_report"]


def test_write_report_is_atomic_and_complete(tmp_path: Path, run: tuple[dict, dict]) -> None:
    manifest, metrics = run
    run_dir = tmp_path / "support-tickets"
    run_dir.mkdir()

    path = write_report(run_dir, Manifest.from_dict(manifest), metrics)

    assert path == run_dir / "report.html"
    assert [p.name for p in run_dir.iterdir()] == ["report.html"]  # no temp file left behind
    assert path.stat().st_mode & 0o777 == 0o644
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "<h1>support-tickets</h1>" in html
    for title in (
        "Summary",
        "Data",
        "Class counts",
        "Training",
        "Hyperparameters",
        "Validation",
        "Evaluation: holdout",
        "Metrics",
        "Per class",
        "Confusion matrix",
        "ROC and precision-recall curves",
        "Calibration",
        "Speed",
        "Environment",
        "Packages",
        "Files",
    ):
        assert f">{title}</h" in html, title
    for label in manifest["labels"]:
        assert f"<li>{label}</li>" in html


def test_report_is_offline(html: str) -> None:
    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)  # only data URIs and anchors


def test_numbers_are_formatted(html: str) -> None:
    assert "0.917" in html  # validation accuracy 0.91666
    assert "0.887" in html or "0.888" in html  # holdout accuracy 0.8875
    assert "0.031" in html  # ECE
    assert "0.973" in html  # ROC-AUC
    assert "22.7 M (22,713,216)" in html
    assert "41.2 s" in html
    assert "2026-11-28 10:00 UTC" in html
    assert f">{SHA_TRAIN[:12]}</code>" in html
    assert f">{SHA_WEIGHTS[:12]}</code>" in html
    assert SHA_WEIGHTS not in html.replace(
        f'title="{SHA_WEIGHTS}"', ""
    )  # full digest: tooltip only
    assert "8.10 ms" in html and "9.90 ms" in html


def test_plots_are_embedded_pngs(html: str) -> None:
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # class counts + training curves + (confusion, ROC, PR, reliability) x 2 results
    assert len(uris) == 2 + 4 * 2
    assert all(base64.b64decode(uri).startswith(PNG_SIGNATURE) for uri in uris)
    assert "not available" not in html.replace("Speed: not available", "")


def test_missing_curves_and_speed_say_not_available() -> None:
    manifest, metrics = make_run(["no", "yes"])
    for key in ("curves", "reliability", "confusion_matrix", "speed", "per_class"):
        del metrics["validation"][key]
    metrics["evaluations"]["holdout"]["curves"] = {"roc": {}, "pr": {}}
    manifest["training"]["history"] = []
    html = render_report(Manifest.from_dict(manifest), metrics)
    for what in (
        "ROC curves",
        "Precision-recall curves",
        "Reliability diagram",
        "Speed",
        "Per-class metrics",
    ):
        assert f"{what}: not available" in html, what
    assert "Loss and validation metrics over steps: not available" in html


def test_empty_inputs_still_render(tmp_path: Path) -> None:
    path = write_report(tmp_path, Manifest(), {})
    html = path.read_text(encoding="utf-8")
    assert "Evaluation results: not available" in html
    assert "Training details: not available" in html
    assert "File fingerprints: not available" in html


def test_malformed_values_do_not_crash() -> None:
    manifest, metrics = make_run(["a", "b", "c"])
    result = metrics["validation"]
    result["accuracy"] = float("nan")
    result["confusion_matrix"]["matrix"] = [[1, 2], [3]]  # not square
    result["curves"]["roc"]["a"]["tpr"] = [0.0, None, 1.0, 1.0]
    result["reliability"] = {"bins": "oops"}
    manifest["training"]["history"] = [{"step": 1, "train_loss": "inf"}]
    html = render_report(Manifest.from_dict(manifest), metrics)
    assert "Confusion matrix" in html
    assert "Reliability diagram" in html


def test_labels_are_escaped() -> None:
    manifest, metrics = make_run(["<script>alert(1)</script>", "ok"])
    manifest["model"]["source"] = '"><img src=x onerror=alert(1)>'
    html = render_report(Manifest.from_dict(manifest), metrics, run_name="<b>run</b>")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;b&gt;run&lt;/b&gt;" in html


def test_extra_sections_are_appended(tmp_path: Path) -> None:
    manifest, metrics = make_run(["no", "yes"])
    extra = [
        ("Explanations", Markup("<p class='x'>top tokens</p>")),
        ("Privacy", "<b>not markup</b>"),
    ]
    html = write_report(
        tmp_path, Manifest.from_dict(manifest), metrics, extra_sections=extra
    ).read_text("utf-8")
    assert "<p class='x'>top tokens</p>" in html
    assert "&lt;b&gt;not markup&lt;/b&gt;" in html
    assert html.index(">Explanations</h2>") > html.index(">Files</h2>")
    assert 'href="#explanations"' in html and 'id="explanations"' in html


def test_failed_write_keeps_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = tmp_path / "report.html"
    previous.write_text("previous", encoding="utf-8")

    def broken_replace(source: Any, target: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path, Manifest(), {})
    assert previous.read_text(encoding="utf-8") == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_overwrites_existing_report(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("old", encoding="utf-8")
    path = write_report(tmp_path, Manifest(), {})
    assert path.read_text(encoding="utf-8")[:3] != "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_missing_run_folder_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        write_report(tmp_path / "nope", Manifest(), {})


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plots.training_curves(None),
        lambda: plots.confusion_matrix({"labels": [], "matrix": []}),
        lambda: plots.roc_curves({}),
        lambda: plots.pr_curves(None),
        lambda: plots.reliability_diagram({"bins": []}),
        lambda: plots.class_distribution({}),
    ],
)
def test_plots_return_none_without_data(draw: Any) -> None:
    assert draw() is None


def test_plot_labels_are_drawn_literally() -> None:
    counts = {"$x$": 3, "_hidden": 2, "a$b": 1}
    uri = plots.class_distribution(counts, ["_hidden"])
    assert uri is not None and uri.startswith("data:image/png;base64,")


def test_hyperparameters_are_a_table_with_their_meaning(html: str) -> None:
    table = html[html.index('<table class="hyperparameters">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><td><code>([\w.]+)</code></td><td><code>([^<]*)</code></td>", table)
    assert ("train.lr", "5e-05") in rows and ("train.epochs", "3") in rows
    assert ("train.head_lr", "—") in rows and ("data.max_length", "128") in rows
    assert "peak learning rate of AdamW" in table  # the help of the config field
    keys = [key for key, _ in rows]
    assert "data.train_file" not in keys and "model.name" not in keys  # shown elsewhere
    assert not any(key.startswith("privacy.") for key in keys)  # privacy was off


def test_privacy_settings_join_the_table_when_dp_is_on() -> None:
    manifest, metrics = make_run(["no", "yes"])
    manifest["config"]["privacy"] = {"epsilon": 3.0, "delta": None, "accountant": "prv"}
    html = render_report(Manifest.from_dict(manifest), metrics)
    assert "<code>privacy.epsilon</code></td><td><code>3</code>" in html
    assert "<code>privacy.accountant</code></td><td><code>prv</code>" in html


def _glyph_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "Glyph" in str(w.message)]


def test_chinese_labels_draw_without_missing_glyphs() -> None:
    labels = ["正面", "负面", "中性"]
    manifest, metrics = make_run(labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html = render_report(Manifest.from_dict(manifest), metrics)
    assert _glyph_warnings(caught) == []
    for label in labels:
        assert f"<li>{label}</li>" in html  # HTML text, drawn by the browser's fonts
        assert f"<tr><td>{label}</td>" in html
    drawn = fonts.label_fonts(labels)
    for position, label in enumerate(labels, start=1):
        if label in drawn.stand_ins:  # no installed font has the glyphs: a key names them
            assert f"<b>#{position}</b> {label}</span>" in html
    if not drawn.stand_ins:
        assert 'class="key"' not in html and len(drawn.families) > 1


def test_labels_no_font_covers_are_drawn_as_stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    only_base = tuple(item for item in fonts._installed() if item[0] == fonts.BASE_FAMILY)
    monkeypatch.setattr(fonts, "_installed", lambda: only_base)  # a machine with no CJK font
    labels = ["正面", "ok", "负面"]
    drawn = fonts.label_fonts(labels)
    assert drawn.families == (fonts.BASE_FAMILY,)
    assert drawn.stand_ins == {"正面": "#1", "负面": "#3"}
    assert drawn.text("ok") == "ok" and drawn.text("负面") == "#3"
    manifest, metrics = make_run(labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html = render_report(Manifest.from_dict(manifest), metrics)
    assert _glyph_warnings(caught) == []
    key = re.findall(r'<p class="key">(.*?)</p>', html)
    # under the class chart, and under each result's confusion matrix and curves
    assert len(key) == 1 + 2 * 2
    assert "<b>#1</b> 正面" in key[0] and "<b>#3</b> 负面" in key[0] and "ok" not in key[0]


def test_a_fallback_font_draws_what_dejavu_sans_lacks() -> None:
    # the circled letter is not in DejaVu Sans but in STIX, which matplotlib ships
    labels = ["\N{CIRCLED LATIN CAPITAL LETTER A} grade", "plain"]
    drawn = fonts.label_fonts(labels)
    assert drawn.stand_ins == {}
    assert drawn.families[0] == fonts.BASE_FAMILY and len(drawn.families) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uri = plots.class_distribution({label: 3 for label in labels}, labels, fonts=drawn)
        plots.roc_curves({"roc": {labels[0]: {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}}})
    assert uri is not None and _glyph_warnings(caught) == []


def test_latin_labels_need_no_fallback() -> None:
    assert fonts.label_fonts(["négatif", "положительный", "Ελληνικά", " "]) == fonts.LabelFonts()


def test_a_run_built_in_its_staging_folder_keeps_its_name(tmp_path: Path) -> None:
    staging = tmp_path / ".support.tmp-4242-x1_y"  # where an --overwrite run is written
    staging.mkdir()
    html = write_report(staging, Manifest(), {}).read_text(encoding="utf-8")
    assert "<h1>support</h1>" in html and ".tmp-" not in html
