"""Defaults by data size: what is chosen for small data, and that a value the user set stays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trustune.config import PrivacyConfig, RunConfig, SelectionMetric, TrainConfig, load_config
from trustune.train.sizing import LARGE_ROWS, left_to_sizing, size_config


def test_300_rows_get_enough_steps_and_a_higher_lr() -> None:
    sizing = size_config(RunConfig(), rows=300, classes=3)
    # 30 rows held out (10% already), 270 train: 9 batches of 32 per epoch
    assert sizing.chosen == {"train.epochs": 12, "train.lr": 1e-4, "train.evaluate_every": 11}
    assert sizing.config.train.epochs == 12 and sizing.config.train.lr == 1e-4
    assert sizing.config.data.validation_fraction == 0.1
    assert sizing.notes == [
        "300 labeled rows, small data: 12 epochs (108 optimizer steps; at least ~100), lr 1e-4, "
        "validated every 11 steps; set --epochs/--lr/--evaluate-every to override"
    ]
    record = sizing.record()
    assert record is not None and record["rows"] == 300 and record["classes"] == 3
    assert record["chosen"]["train.epochs"] == 12 and record["notes"] == sizing.notes
    json.dumps(record)  # goes into the manifest as is


def test_100_rows_hold_out_20_rows() -> None:
    sizing = size_config(RunConfig(), rows=100, classes=2)
    assert sizing.config.data.validation_fraction == 0.2
    # 80 train rows: 3 steps per epoch, 34 epochs for 100 steps, 10 validations
    assert sizing.chosen["train.epochs"] == 34 and sizing.chosen["train.evaluate_every"] == 11
    assert "validation 20 rows (20%)" in sizing.notes[0]


def test_tiny_data_do_not_stop_early_and_select_on_the_loss() -> None:
    sizing = size_config(RunConfig(), rows=24, classes=3)
    tc = sizing.config.train
    assert tc.early_stopping_patience == 0 and tc.selection_metric is SelectionMetric.LOSS
    assert round(24 * sizing.config.data.validation_fraction) == 5
    assert sizing.notes[1] == (
        "24 labeled rows: 5 validation rows are too few to stop early on; early stopping off, "
        "the best checkpoint chosen by validation loss; set "
        "--early-stopping-patience/--selection-metric to override"
    )


def test_large_data_keep_todays_defaults() -> None:
    config = RunConfig()
    sizing = size_config(config, rows=LARGE_ROWS, classes=2)
    assert sizing.config is config and sizing.chosen == {} and sizing.notes == []
    assert sizing.record() is None
    assert size_config(config, rows=LARGE_ROWS - 1, classes=2).chosen == {"train.lr": 1e-4}


def test_explicit_keys_stay_even_at_their_default_value() -> None:
    given = RunConfig().with_overrides({"train": {"epochs": 3, "lr": 5e-5}})
    assert given.explicit == {"train.epochs", "train.lr"}
    sizing = size_config(given, rows=300, classes=3)
    assert sizing.chosen == {} and sizing.config.train.epochs == 3


def test_a_value_other_than_the_default_counts_as_set() -> None:
    """A RunConfig built in Python does not record what was given; its own values stay."""
    config = RunConfig(train=TrainConfig(epochs=5, batch_size=8))
    sizing = size_config(config, rows=300, classes=3)
    assert "train.epochs" not in sizing.chosen and sizing.config.train.epochs == 5
    assert sizing.chosen["train.lr"] == 1e-4


def test_yaml_keys_are_explicit_and_flags_add_to_them(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 3\ndata:\n  max_length: 64\n", encoding="utf-8")
    config = load_config(path).with_overrides({"train": {"lr": 2e-5}, "data": {}})
    assert config.explicit == {"train.epochs", "data.max_length", "train.lr"}
    assert "explicit" not in config.to_dict()
    assert size_config(config, rows=300, classes=3).chosen == {}


def test_a_validation_file_is_not_resized(tmp_path: Path) -> None:
    config = RunConfig().with_overrides({"data": {"validation_file": str(tmp_path / "v.csv")}})
    sizing = size_config(config, rows=24, classes=2)
    assert "data.validation_fraction" not in sizing.chosen
    assert "train.early_stopping_patience" not in sizing.chosen  # the validation set is its own
    assert sizing.notes[0].startswith("24 training rows, small data: 100 epochs")


def test_differential_privacy_is_left_alone() -> None:
    config = RunConfig(privacy=PrivacyConfig(epsilon=8.0))
    assert size_config(config, rows=300, classes=2).chosen == {}


@pytest.mark.parametrize("rows", [8, 24, 49, 50, 100, 151, 299, 300, 1000, 4999])
def test_the_chosen_fraction_holds_out_the_rows_the_note_names(rows: int) -> None:
    from trustune.data import LabeledData, with_validation
    from trustune.data.columns import Columns

    data = LabeledData(
        texts=[f"text {i}" for i in range(rows)], raw_labels=[i % 2 for i in range(rows)],
        info={"path": "d.csv", "rows": rows},
    )  # fmt: skip
    sizing = size_config(RunConfig(), rows=rows, classes=2)
    split = with_validation(
        data, Columns(text="text", label="label"), stratified=True,
        validation_fraction=sizing.config.data.validation_fraction,
    )  # fmt: skip
    held_out = len(split.validation)
    # 10%, but at least 30 rows where 20% of the data allow (and one per class)
    assert held_out == max(round(rows * 0.1), min(30, round(rows * 0.2)), 2)
    if "data.validation_fraction" in sizing.chosen:
        assert f"validation {held_out} rows" in sizing.notes[0]


def _checkpoint(folder: Path, chosen: dict[str, Any]) -> Path:
    folder.mkdir()
    state = {"state": {"extra": {"sizing": {"chosen": chosen}}}, "run": {}}
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")
    return folder


def test_resume_with_the_same_arguments_is_no_change(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path / "step-000010", {"train.epochs": 12, "train.lr": 1e-4})
    same = RunConfig().with_overrides({"data": {"train_file": "d.csv"}})
    assert left_to_sizing(same, checkpoint) == {"train.epochs", "train.lr"}
    # an epochs given now is a change the resume must refuse
    given = RunConfig().with_overrides({"train": {"epochs": 3}})
    assert left_to_sizing(given, checkpoint) == {"train.lr"}
    assert left_to_sizing(None, checkpoint) == set()
    assert left_to_sizing(same, tmp_path / "missing") == set()


def test_train_prints_and_records_the_sizing_and_keeps_an_explicit_epochs(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    from test_cli import trustune

    run = tmp_path / "run"
    result = trustune("train", "--data", demo_files[0], "--model", tiny_model, "--output", run,
                      "--epochs", "2", "--no-speed")  # fmt: skip
    assert result.returncode == 0, result.stderr
    note = (
        "128 labeled rows, small data: lr 1e-4, validation 26 rows (20%); set "
        "--lr/--validation-fraction to override"
    )
    assert note in " ".join(result.stderr.split())
    manifest = json.loads((run / "trustune.json").read_text(encoding="utf-8"))
    sizing = manifest["training"]["sizing"]
    assert sizing["notes"] == [note] and sizing["rows"] == 128 and sizing["classes"] == 4
    assert sizing["chosen"] == {"train.lr": 1e-4, "data.validation_fraction": 0.2031}
    config = manifest["config"]
    assert config["train"]["epochs"] == 2 and config["train"]["lr"] == 1e-4
    assert manifest["data"]["validation"]["rows"] == 26 and manifest["training"]["steps"] == 8


def test_a_sized_run_resumes_with_the_same_arguments(
    tmp_path: Path, tiny_model: Path, demo_files: tuple[Path, Path]
) -> None:
    import trustune
    from trustune.errors import ConfigError, TrainingInterrupted
    from trustune.progress import Progress

    class StopAt(Progress):
        def advance(self, task: str, amount: int = 1, **fields: Any) -> None:
            self.steps = getattr(self, "steps", 0) + amount
            if self.steps == 3:
                raise KeyboardInterrupt

    def train(**options: Any) -> trustune.Run:
        return trustune.finetune(demo_files[0], model=str(tiny_model), output=tmp_path / "run",
                                 epochs=2, early_stopping_patience=0, measure_latency=False,
                                 **options)  # fmt: skip

    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(progress=StopAt())
    # the lr and the validation split were chosen by size: giving another lr now is a change
    with pytest.raises(ConfigError, match=r"these differ from it: \['train.lr'\]"):
        train(resume=True, lr=5e-5, progress=False)
    resumed = train(resume=True, progress=False)  # the same arguments: no change
    manifest = resumed.manifest
    assert manifest.training.sizing is not None
    assert manifest.training.sizing["chosen"] == {
        "train.lr": 1e-4,
        "data.validation_fraction": 0.2031,
    }
    assert manifest.setting("data", "validation_fraction") == 0.2031
    assert manifest.data.validation is not None and manifest.data.validation.rows == 26
    assert manifest.training.steps == 8
