"""The typed manifest (trustune.manifest): golden files of both formats, round trips, damage.

``tests/golden/manifest_v2.json`` is the manifest of a text-pair regression run as this release
writes it (format 2); ``tests/golden/run_v1`` is a run written by trustune 0.1.0 (format 1).
``tests/golden/make_manifest_v2.py`` says how the format-2 file is remade after a deliberate
change of the format: ``test_the_writer_still_writes_the_golden_format`` fails until it is.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import trustune.manifest
from trustune.errors import ArtifactError
from trustune.manifest import (
    DEFAULT_TASK,
    FORMAT_VERSION,
    DataPart,
    Manifest,
    ModelRecord,
    PrivacyRecord,
    TrainingRecord,
    read_manifest,
    write_manifest,
)

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_FILES = ["run_v1/trustune.json", "manifest_v2.json"]


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _keys(data: Any, prefix: str = "") -> set[str]:
    """Every key path of a manifest but the resolved config's (a new setting is no format change)
    and the history entries' (the task decides them)."""
    if not isinstance(data, dict):
        return set()
    out = set()
    for key, value in data.items():
        path = f"{prefix}{key}"
        out.add(path)
        if path not in ("config", "files", "training.history"):
            out |= _keys(value, path + ".")
    return out


def test_the_public_names() -> None:
    assert set(trustune.manifest.__all__) == {
        "DEFAULT_TASK", "FORMAT", "FORMAT_VERSION", "CompressionRecord", "DataPart", "DataRecord",
        "EnvironmentRecord", "Layout", "Manifest", "ModelRecord", "PrivacyRecord", "Record",
        "TargetRecord", "TrainingRecord", "read_manifest", "write_manifest",
    }  # fmt: skip


def test_format_1_reads_as_text_classification() -> None:
    manifest = read_manifest(GOLDEN / "run_v1")
    assert manifest.format_version == 1 and manifest.task == DEFAULT_TASK
    assert manifest.labels == ("account", "billing", "shipping", "technical")
    assert manifest.target is None and manifest.privacy is None and not manifest.pairs
    assert manifest.data.train is not None and manifest.data.train.rows == 86
    assert manifest.data.validation is not None and manifest.data.validation.split_from_train
    assert manifest.model.parameters == 9652 and manifest.training.steps == 6
    assert manifest.training.history[0]["val_accuracy"] == 0.3
    assert manifest.environment.packages["torch"] == "2.13.0+cpu"
    assert manifest.setting("data", "max_length") == 48
    assert manifest.files["model/model.safetensors"].startswith("e1702f")


def test_format_1_without_a_task_key_is_classification_and_stays_without_one() -> None:
    data = _json(GOLDEN / "run_v1" / "trustune.json")
    del data["task"]
    manifest = Manifest.from_dict(data)
    assert manifest.task == DEFAULT_TASK
    assert manifest.to_dict() == data  # written back as it was: no task key added


def test_format_2_golden_parses_with_its_task_and_target() -> None:
    manifest = Manifest.from_dict(_json(GOLDEN / "manifest_v2.json"), source="manifest_v2.json")
    assert manifest.format_version == FORMAT_VERSION == 2
    assert manifest.task == "text-regression" and manifest.labels is None
    assert manifest.target is not None and manifest.target.folded
    assert manifest.target.column == "score" and manifest.target.std == pytest.approx(0.9608, 1e-3)
    assert manifest.pairs and manifest.text_pair_column == "sentence2"
    validation = manifest.data.validation
    assert validation is not None and validation.source == "validation file data/dev.tsv"
    assert validation.target_stats["max"] == 5.157
    assert manifest.training.selection_metric == "spearman"


@pytest.mark.parametrize("name", GOLDEN_FILES)
def test_a_manifest_read_and_written_again_is_the_same_file(name: str, tmp_path: Path) -> None:
    data = _json(GOLDEN / name)
    manifest = Manifest.from_dict(data)
    assert manifest.to_dict() == data
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "trustune.json").write_bytes((GOLDEN / name).read_bytes())
    write_manifest(folder, read_manifest(folder))
    assert (folder / "trustune.json").read_bytes() == (GOLDEN / name).read_bytes()


def test_the_writer_still_writes_the_golden_format(regression_run: Path) -> None:
    written = _json(regression_run / "trustune.json")
    golden = _json(GOLDEN / "manifest_v2.json")
    assert _keys(written) == _keys(golden), "remake tests/golden/manifest_v2.json (see its script)"
    again = json.dumps(read_manifest(regression_run).to_dict(), indent=2, ensure_ascii=False) + "\n"
    assert again == (regression_run / "trustune.json").read_text(encoding="utf-8")


def test_unknown_keys_survive_a_round_trip() -> None:
    data = _json(GOLDEN / "manifest_v2.json")
    data["note"] = {"by": "hand"}
    data["training"]["future_field"] = [1, 2]
    data["data"]["validation"]["from_a_newer_release"] = None
    manifest = Manifest.from_dict(data)
    assert manifest.extra == {"note": {"by": "hand"}}
    assert manifest.training.extra == {"future_field": [1, 2]}
    assert manifest.to_dict() == data
    assert list(manifest.to_dict()) == list(data)  # in the order they were read
    changed = dataclasses.replace(manifest, files={"model/x": "00"})
    assert changed.to_dict() == {**data, "files": {"model/x": "00"}}


def test_nulls_stay_and_fields_set_to_none_go() -> None:
    data = _json(GOLDEN / "manifest_v2.json")
    data["training"]["best_metric"] = None
    data["encryption"] = {"format": "trustune.sealed"}
    manifest = Manifest.from_dict(data)
    assert manifest.training.best_metric is None and manifest.encrypted
    assert manifest.to_dict()["training"]["best_metric"] is None  # read as null, written as null
    plain = dataclasses.replace(manifest, encryption=None).to_dict()
    assert "encryption" not in plain  # removed, as decrypting a run removes it


def test_a_manifest_built_in_code() -> None:
    manifest = Manifest(
        labels=("no", "yes"), model=ModelRecord(source="minilm"),
        privacy=PrivacyRecord(audit={"auc": 0.5}),
    )  # fmt: skip
    assert manifest.to_dict() == {
        "format": "trustune.run", "format_version": FORMAT_VERSION, "task": DEFAULT_TASK,
        "labels": ["no", "yes"], "model": {"source": "minilm"},
        "privacy": {"dp": False, "audit": {"auc": 0.5}},
    }  # fmt: skip
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.data.splits() == [] and manifest.training == TrainingRecord()
    assert DataPart(rows=3).to_dict() == {"rows": 3}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(labels="account"),
         r"the manifest key 'labels' is 'account', not a list or null"),
        (lambda m: m["labels"].append(True),
         r"the manifest key 'labels\[4\]' is True, not a string or an integer"),
        (lambda m: m["model"].update(parameters="many"),
         r"the manifest key 'model.parameters' is 'many', not an integer or null"),
        (lambda m: m["data"].update(train=[1]),
         r"the manifest key 'data.train' is \[1\], not an object or null"),
        (lambda m: m["training"].update(history={"step": 1}),
         r"the manifest key 'training.history' is \{'step': 1\}, not a list"),
        (lambda m: m["config"].update(data=3), r"the manifest key 'config.data' is 3, not an object"),
        (lambda m: m.pop("format_version"), r"is damaged: it has no 'format_version'"),
        (lambda m: m.update(format_version=0), r"'format_version' is 0, not a format version"),
        (lambda m: m.update(format="other"), r"is not a trustune manifest"),
    ],
)  # fmt: skip
def test_a_damaged_manifest_names_the_key_and_the_file(change: Any, message: str) -> None:
    data = _json(GOLDEN / "run_v1" / "trustune.json")
    change(data)
    with pytest.raises(ArtifactError, match=message) as raised:
        Manifest.from_dict(data, source="runs/x/trustune.json")
    assert str(raised.value).startswith("runs/x/trustune.json")
    assert "\n" not in str(raised.value)


def test_a_newer_format_asks_for_an_upgrade() -> None:
    data = _json(GOLDEN / "manifest_v2.json")
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(
        ArtifactError, match=r"^runs/x was written by a newer trustune \(format 3\)"
    ):
        Manifest.from_dict(data, source="runs/x/trustune.json")


def test_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no run folder"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(ArtifactError, match=r"is not a trustune run \(no trustune.json\)"):
        read_manifest(tmp_path)
    (tmp_path / "trustune.json").write_text("{", encoding="utf-8")
    with pytest.raises(ArtifactError, match="cannot be read as a trustune manifest"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [("labels", 7, "'labels' is 7"), ("format_version", None, "'format_version' is None")],
)
def test_the_cli_refuses_a_damaged_manifest_in_one_line(
    tmp_path: Path, key: str, value: Any, named: str
) -> None:
    from test_cli import _error_line, trustune

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    data = _json(GOLDEN / "run_v1" / "trustune.json")
    data[key] = value
    (run / "trustune.json").write_text(json.dumps(data), encoding="utf-8")
    result = trustune("predict", run, "--text", "hello")
    assert result.returncode == 2, result.stderr
    line = _error_line(result)
    assert named in line and str(run / "trustune.json") in line and "restore" in line
