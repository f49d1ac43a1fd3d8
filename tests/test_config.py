from __future__ import annotations

from pathlib import Path

import pytest

from trustune.cli.main import build_parser
from trustune.cli.train import config_flags
from trustune.config import Precision, RunConfig, TrainConfig, load_config
from trustune.errors import ConfigError


def test_yaml_maps_onto_dataclasses(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "data:\n  train_file: t.csv\n  max_length: 64\nmodel:\n  name: minilm\n"
        "train:\n  epochs: 2\n  precision: bf16\n  lr: 0.0001\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.data.train_file == "t.csv"
    assert config.data.max_length == 64
    assert config.train.epochs == 2
    assert config.train.precision is Precision.BF16
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"epochz": 2}}, "unknown key train.epochz. Allowed keys: ['batch_size'"),
        ({"trian": {}}, "unknown section 'trian'. Choose between ['data', 'model', 'train']"),
        (
            {"train": {"precision": "fp8"}},
            "train.precision: 'fp8' is not allowed. Choose between ['auto', 'fp32', 'bf16']",
        ),
        ({"train": {"epochs": 0}}, "train.epochs: 0 is not allowed, it must be > 0"),
        ({"train": {"epochs": "three"}}, "train.epochs: 'three' is not a int"),
        ({"train": {"lr": True}}, "train.lr: True is not a float"),
        ({"data": {"validation_fraction": 1.5}}, "data.validation_fraction: 1.5 is not allowed"),
        ({"train": {"selection_metric": "auc"}}, "Choose between ['accuracy', 'f1_macro', 'loss']"),
    ],
)
def test_bad_config_names_key_and_allowed_values(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict(raw)
    assert message in str(e.value)


def test_bad_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml \(line \d+\) is not valid YAML"):
        load_config(path)


def test_every_config_field_has_a_cli_flag() -> None:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    options = {s for action in train._actions for s in action.option_strings}
    flags = config_flags()
    assert {f.name for _, section, f in flags if section == "train"} == set(
        TrainConfig.__dataclass_fields__
    )
    for flag, _, _ in flags:
        assert flag in options
    for expected in (
        "--data",
        "--validation",
        "--model",
        "--epochs",
        "--batch-size",
        "--lr",
        "--max-length",
        "--seed",
    ):
        assert expected in options


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: 5\n  batch_size: 8\n", encoding="utf-8")
    args = build_parser().parse_args(["train", "--config", str(path), "--epochs", "2"])
    base = load_config(args.config)
    overrides: dict[str, dict] = {"data": {}, "model": {}, "train": {}}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            overrides[section][name] = value
    merged = base.with_overrides(overrides)
    assert merged.train.epochs == 2
    assert merged.train.batch_size == 8
