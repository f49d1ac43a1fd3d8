"""The majority-class baseline and the warnings of a run that did not learn."""

from __future__ import annotations

import shutil
from pathlib import Path

from trustune.evaluate.learning import check_learning, majority_baseline
from trustune.manifest import DataPart, DataRecord, Manifest, TrainingRecord


def _manifest(counts: dict[str, int], losses: list[float]) -> Manifest:
    history = tuple({"step": i, "train_loss": loss} for i, loss in enumerate(losses))
    return Manifest(
        data=DataRecord(validation=DataPart(class_counts=counts)),
        training=TrainingRecord(history=history),
    )


def test_majority_baseline() -> None:
    assert majority_baseline({"a": 30, "b": 10}) == 0.75
    assert majority_baseline({}) is None


def test_a_run_that_learned_has_no_warnings() -> None:
    check = check_learning(_manifest({"a": 50, "b": 50}, [0.7, 0.3]), {"accuracy": 0.9})
    assert check.baseline == 0.5 and check.accuracy == 0.9
    assert check.warnings == []


def test_a_run_at_the_baseline_is_said_not_to_have_learned() -> None:
    check = check_learning(_manifest({"a": 80, "b": 20}, [0.7, 0.69]), {"accuracy": 0.8})
    assert len(check.warnings) == 2
    assert check.warnings[0].startswith(
        "the model did not learn: validation accuracy 0.800 is at the majority-class baseline 0.800"
    )
    assert check.warnings[1].startswith("the training loss barely moved (0.700 → 0.690)")


def test_a_tiny_validation_set_is_named() -> None:
    check = check_learning(_manifest({"a": 1, "b": 1, "c": 1}, [1.1, 0.2]), {"accuracy": 1.0})
    assert check.warnings == [
        "the validation set is too small to select a checkpoint on (3 rows, 1 of the rarest "
        "label); pass a larger --validation file or a larger --validation-fraction"
    ]


def test_train_and_report_show_the_baseline_and_the_warning(tmp_path: Path, tiny_run: Path) -> None:
    """The tiny random model on 115 rows does not learn: the terminal and the report say so."""
    from test_cli import trustune
    from trustune.artifact import read_metrics
    from trustune.manifest import read_manifest

    manifest = read_manifest(tiny_run)
    check = check_learning(manifest, read_metrics(tiny_run)["validation"])
    assert check.baseline is not None
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    result = trustune("report", copy)
    assert result.returncode == 0, result.stderr
    html = (copy / "report.html").read_text(encoding="utf-8")
    assert f"<strong>{check.baseline:.3f}</strong>" in html
    for warning in check.warnings:
        assert f"Warning: {warning}" in html
